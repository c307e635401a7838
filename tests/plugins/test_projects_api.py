"""Projects plugin API: projects, members, work items, dependencies, bad input, links, CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from tests.plugins.conftest import eventually

H = dict[str, str]


async def _project(client: AsyncTestClient, headers: H, name: str = "Apollo") -> dict[str, Any]:
    r = await client.post(
        "/api/projects", json={"name": name, "description": "moon"}, headers=headers
    )
    assert r.status_code == 201, r.text
    return r.json()


async def _item(client: AsyncTestClient, headers: H, project_id: str, **body: Any) -> Any:
    return await client.post(
        f"/api/projects/{project_id}/items", json={"title": "item", **body}, headers=headers
    )


async def _events(client: AsyncTestClient, headers: H, subject_id: str) -> list[dict[str, Any]]:
    r = await client.get("/api/events", params={"after": 0, "limit": 1000}, headers=headers)
    assert r.status_code == 200, r.text
    return [e for e in r.json()["items"] if e["subject_id"] == subject_id]


async def test_project_with_dependent_items_and_events(
    client: AsyncTestClient, admin_headers: H
) -> None:
    p = await _project(client, admin_headers)
    a = (
        await _item(
            client,
            admin_headers,
            p["id"],
            title="design",
            start_date="2026-12-01",
            due_date="2026-12-03",
            estimate_hours=8,
        )
    ).json()
    b = (
        await _item(
            client,
            admin_headers,
            p["id"],
            title="build",
            start_date="2026-12-04",
            due_date="2026-12-10",
            depends_on=[a["id"]],
            assignee="admin",
        )
    ).json()
    m = (
        await _item(
            client,
            admin_headers,
            p["id"],
            title="launch",
            due_date="2026-12-11",
            milestone=True,
            depends_on=[b["id"]],
        )
    ).json()
    assert b["depends_on"] == [a["id"]] and b["assignee"] == "admin"
    assert m["milestone"] and m["start_date"] == m["due_date"] == "2026-12-11"

    r = await client.patch(
        f"/api/projects/items/{b['id']}",
        json={"start_date": "2026-12-05", "due_date": "2026-12-12", "status": "doing"},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["start_date"], r.json()["due_date"], r.json()["status"]) == (
        "2026-12-05",
        "2026-12-12",
        "doing",
    )

    detail = (await client.get(f"/api/projects/{p['id']}", headers=admin_headers)).json()
    assert [i["title"] for i in detail["items"]] == ["design", "build", "launch"]
    assert {(d["predecessor_id"], d["successor_id"]) for d in detail["dependencies"]} == {
        (a["id"], b["id"]),
        (b["id"], m["id"]),
    }
    assert detail["project"]["item_count"] == 3
    assert [x["username"] for x in detail["members"]] == ["admin"]

    kinds = [e["kind"] for e in await _events(client, admin_headers, b["id"])]
    assert kinds == ["work_item.created", "work_item.dependency_added", "work_item.updated"]
    assert [e["kind"] for e in await _events(client, admin_headers, p["id"])] == ["project.created"]


async def _snapshot(client: AsyncTestClient, headers: H, project_id: str) -> tuple[Any, int]:
    detail = (await client.get(f"/api/projects/{project_id}", headers=headers)).json()
    events = (
        await client.get("/api/events", params={"after": 0, "limit": 1000}, headers=headers)
    ).json()["items"]
    return detail, len(events)


async def test_bad_input_is_refused_and_changes_nothing(
    client: AsyncTestClient, admin_headers: H
) -> None:
    p = await _project(client, admin_headers)
    other = await _project(client, admin_headers, "Other")
    a = (await _item(client, admin_headers, p["id"], title="a")).json()
    b = (await _item(client, admin_headers, p["id"], title="b", depends_on=[a["id"]])).json()
    c = (await _item(client, admin_headers, p["id"], title="c", depends_on=[b["id"]])).json()
    foreign = (await _item(client, admin_headers, other["id"], title="foreign")).json()
    before = await _snapshot(client, admin_headers, p["id"])

    cases = [
        # a cycle a → b → c → a
        (
            client.post(
                f"/api/projects/items/{a['id']}/dependencies",
                json={"predecessor_id": c["id"]},
                headers=admin_headers,
            ),
            "cycle",
        ),
        # self dependency
        (
            client.post(
                f"/api/projects/items/{a['id']}/dependencies",
                json={"predecessor_id": a["id"]},
                headers=admin_headers,
            ),
            "itself",
        ),
        # due before start
        (
            _item(client, admin_headers, p["id"], start_date="2026-12-10", due_date="2026-12-01"),
            "before start_date",
        ),
        (
            client.patch(
                f"/api/projects/items/{a['id']}",
                json={"start_date": "2026-12-10", "due_date": "2026-12-01"},
                headers=admin_headers,
            ),
            "before start_date",
        ),
        # a work item in another project as a dependency
        (
            client.post(
                f"/api/projects/items/{a['id']}/dependencies",
                json={"predecessor_id": foreign["id"]},
                headers=admin_headers,
            ),
            "another project",
        ),
        (
            _item(client, admin_headers, p["id"], title="x", depends_on=[foreign["id"]]),
            "another project",
        ),
        (
            _item(client, admin_headers, p["id"], title="x", depends_on=[str(uuid.uuid4())]),
            "does not exist",
        ),
        (_item(client, admin_headers, p["id"], title=""), "title"),
        (_item(client, admin_headers, p["id"], status="blocked"), "status"),
        (_item(client, admin_headers, p["id"], start_date="2026-13-01"), "start_date"),
        (_item(client, admin_headers, p["id"], milestone=True), "milestone needs a due_date"),
        (_item(client, admin_headers, p["id"], assignee="nobody"), "not a member"),
        (_item(client, admin_headers, p["id"], estimate_hours=-1), "estimate_hours"),
        (
            client.patch(f"/api/projects/items/{a['id']}", json={}, headers=admin_headers),
            "nothing to change",
        ),
    ]
    for request, expected in cases:
        r = await request
        assert r.status_code == 400, (expected, r.status_code, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert expected in r.json()["detail"], (expected, r.json())
    cycle = await client.post(
        f"/api/projects/items/{a['id']}/dependencies",
        json={"predecessor_id": c["id"]},
        headers=admin_headers,
    )
    assert "'a' → 'c' → 'b' → 'a'" in cycle.json()["detail"] or "cycle" in cycle.json()["detail"]
    assert await _snapshot(client, admin_headers, p["id"]) == before


async def test_members_and_access(
    client: AsyncTestClient, admin_headers: H, member_headers: H
) -> None:
    p = await _project(client, admin_headers)
    r = await client.get(f"/api/projects/{p['id']}", headers=member_headers)
    assert r.status_code == 403
    assert (await client.get("/api/projects", headers=member_headers)).json()["items"] == []
    r = await client.post(
        f"/api/projects/{p['id']}/members", json={"username": "mia"}, headers=admin_headers
    )
    assert r.status_code == 201 and {m["username"] for m in r.json()} == {"admin", "mia"}
    dup = await client.post(
        f"/api/projects/{p['id']}/members", json={"username": "mia"}, headers=admin_headers
    )
    assert dup.status_code == 409
    assert [
        x["id"] for x in (await client.get("/api/projects", headers=member_headers)).json()["items"]
    ] == [p["id"]]
    r = await _item(client, member_headers, p["id"], title="mine", assignee="mia")
    assert r.status_code == 201 and r.json()["assignee"] == "mia"
    mine = await client.post("/api/projects", json={"name": "Mia's"}, headers=member_headers)
    r = await client.post(
        f"/api/projects/{mine.json()['id']}/members",
        json={"username": "ghost"},
        headers=member_headers,
    )
    assert r.status_code == 400 and "no user named" in r.json()["detail"]


async def test_a_task_of_a_work_item_is_charged_to_its_project(
    client: AsyncTestClient, admin_headers: H, task_body: Any
) -> None:
    p = await _project(client, admin_headers)
    item = (await _item(client, admin_headers, p["id"], title="train")).json()
    ext = {"projects": {"work_item_id": item["id"]}}
    r = await client.post("/api/tasks", json=task_body(extensions=ext), headers=admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["account"] == f"project:{p['id']}"
    same = task_body(extensions=ext, account=f"project:{p['id']}")
    r = await client.post("/api/tasks", json=same, headers=admin_headers)
    assert r.status_code == 201 and r.json()["account"] == f"project:{p['id']}"
    before = (await client.get("/api/tasks", headers=admin_headers)).json()["items"]
    r = await client.post(
        "/api/tasks", json=task_body(extensions=ext, account="other"), headers=admin_headers
    )
    assert r.status_code == 400, r.text
    assert "give one account or none" in r.json()["detail"]
    assert (await client.get("/api/tasks", headers=admin_headers)).json()["items"] == before
    r = await client.post("/api/tasks", json=task_body(account="ml-group"), headers=admin_headers)
    assert r.status_code == 201 and r.json()["account"] == "ml-group"


async def test_task_submitted_with_work_item_shows_its_runs(
    client: AsyncTestClient, admin_headers: H, member_headers: H, task_body: Any, database_url: str
) -> None:
    p = await _project(client, admin_headers)
    item = (await _item(client, admin_headers, p["id"], title="train")).json()
    r = await client.post(
        "/api/tasks",
        json=task_body(extensions={"projects": {"work_item_id": item["id"]}}),
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    task = r.json()
    assert task["extra"]["extensions"] == {"projects": {"work_item_id": item["id"]}}
    detail = (await client.get(f"/api/projects/items/{item['id']}", headers=admin_headers)).json()
    assert [(x["task_id"], x["state"]) for x in detail["run_list"]] == [(task["id"], "pending")]
    assert detail["item"]["runs"] == {"pending": 1}

    # The link follows the task's events (listener after commit): cancel it.
    r = await client.post(f"/api/tasks/{task['id']}/cancel", headers=admin_headers)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"

    async def cancelled() -> bool:
        d = (await client.get(f"/api/projects/items/{item['id']}", headers=admin_headers)).json()
        return d["run_list"][0]["state"] == "cancelled"

    await eventually(cancelled)

    # Linking an existing task by hand, then the bad cases: nothing is written.
    other = (
        await client.post("/api/tasks", json=task_body(name="other"), headers=admin_headers)
    ).json()
    r = await client.post(
        f"/api/projects/items/{item['id']}/runs",
        json={"task_id": other["id"]},
        headers=admin_headers,
    )
    assert r.status_code == 201 and len(r.json()["run_list"]) == 2
    tasks_before = (await client.get("/api/tasks", headers=admin_headers)).json()["items"]
    for ext, expected in [
        ({"work_item_id": str(uuid.uuid4())}, "does not exist"),
        ({"work_item_id": "nope"}, "not a work item id"),
        ({"work_item": item["id"]}, "expected exactly"),
    ]:
        r = await client.post(
            "/api/tasks", json=task_body(extensions={"projects": ext}), headers=admin_headers
        )
        assert r.status_code == 400 and expected in r.json()["detail"], r.text
    r = await client.post(
        "/api/tasks",
        json=task_body(extensions={"projects": {"work_item_id": item["id"]}}),
        headers=member_headers,
    )
    assert r.status_code == 403, r.text  # not a member of the project
    r = await client.post(
        f"/api/projects/items/{item['id']}/runs",
        json={"task_id": other["id"]},
        headers=admin_headers,
    )
    assert r.status_code == 409
    assert (await client.get("/api/tasks", headers=admin_headers)).json()["items"] == tasks_before
    with psycopg.connect(_libpq(database_url)) as conn:
        assert conn.execute("SELECT count(*) FROM projects_task_links").fetchone()[0] == 2


def _libpq(url: str) -> str:
    from unidesk.core.db.engine import libpq_url

    return libpq_url(url)


async def test_csv_export_is_stamped_in_beijing_time(
    client: AsyncTestClient, admin_headers: H
) -> None:
    from datetime import datetime

    from unidesk.plugins.projects.controllers import csv_file_name

    p = await _project(client, admin_headers, "Big launch")
    await _item(
        client,
        admin_headers,
        p["id"],
        title='=HYPERLINK("x")',
        start_date="2026-12-01",
        due_date="2026-12-02",
    )
    r = await client.get(f"/api/projects/{p['id']}/export.csv", headers=admin_headers)
    assert r.status_code == 200
    assert r.headers["content-disposition"].startswith('attachment; filename="Big-launch-items-')
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0][:3] == ["id", "title", "status"]
    assert rows[1][1] == '\'=HYPERLINK("x")'  # no formula injection
    # 2026-11-27 20:30 UTC is 2026-11-28 04:30 in Beijing
    assert (
        csv_file_name("p", datetime(2026, 11, 27, 20, 30, tzinfo=UTC))
        == "p-items-20261128-0430.csv"
    )


async def test_csv_export_of_a_non_ascii_project_name_is_rfc5987(
    client: AsyncTestClient, admin_headers: H
) -> None:
    from urllib.parse import unquote

    p = await _project(client, admin_headers, "徐的项目")
    r = await client.get(f"/api/projects/{p['id']}/export.csv", headers=admin_headers)
    assert r.status_code == 200, r.text
    value = r.headers["content-disposition"]
    assert value.isascii() and value.startswith('attachment; filename="')
    assert unquote(value.split("filename*=UTF-8''")[1]).startswith("徐的项目")
