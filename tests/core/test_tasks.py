"""Tasks API: submit, list with filters and cursors, get, trace, cancel, retry, ownership."""

from __future__ import annotations

import base64
import functools
import operator
import uuid
from typing import Any

import psycopg
import pytest
from litestar.testing import AsyncTestClient

from tests.core.conftest import SHA_A, SHA_B, task_body
from unidesk.core.db.engine import libpq_url

PROBLEM = "application/problem+json"


async def submit(
    client: AsyncTestClient, headers: dict[str, str], **overrides: Any
) -> dict[str, Any]:
    r = await client.post("/api/tasks", json=task_body(**overrides), headers=headers)
    assert r.status_code == 201, r.text
    return r.json()


async def test_submit_then_get_list_and_trace(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    task = await submit(
        client, admin_headers, env={"DATASET_NAME": "imagenet-mini"}, priority=5, timeout_s=60
    )
    assert task["state"] == "pending"
    assert task["owner"] == "admin"
    assert task["code_commit_id"] == SHA_A and task["env_commit_id"] == SHA_B
    assert task["command"] == ["python", "train.py", "--epochs", "1"]
    assert task["resources"] == {
        "cpus": 1.0,
        "memory_mb": 256,
        "gpus": 0,
        "labels": {},
        "gpu_model": None,
        "gpu_memory_mb": None,
        "pids_limit": None,
    }
    assert (task["priority"], task["timeout_s"], task["max_attempts"], task["attempt_count"]) == (
        5,
        60,
        3,
        0,
    )

    got = (await client.get(f"/api/tasks/{task['id']}", headers=admin_headers)).json()
    assert (
        got["id"] == task["id"]
        and got["attempts"] == []
        and got["env"] == {"DATASET_NAME": "imagenet-mini"}
    )

    listed = (await client.get("/api/tasks", headers=admin_headers)).json()
    assert [t["id"] for t in listed["items"]] == [task["id"]]

    trace = (await client.get(f"/api/tasks/{task['id']}/trace", headers=admin_headers)).json()[
        "items"
    ]
    assert [e["kind"] for e in trace] == ["task.submitted"]
    assert trace[0]["actor"] == "user:admin" and trace[0]["subject_id"] == task["id"]
    assert trace[0]["payload"]["spec"]["env_keys"] == ["DATASET_NAME"]
    assert "imagenet-mini" not in str(trace), (
        "env values may be secrets: the trace keeps only names"
    )


async def test_string_command_runs_through_sh(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    task = await submit(client, admin_headers, command="echo hi && ls", name="")
    assert task["command"] == ["/bin/sh", "-c", "echo hi && ls"]
    assert task["name"], "an unnamed task gets a name from its command"


async def test_cancel_pending_then_cancel_again(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    task = await submit(client, admin_headers)
    r = await client.post(f"/api/tasks/{task['id']}/cancel", headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (
        r.json()["state"] == "cancelled"
        and r.json()["reason"] == "cancelled"
        and r.json()["finished_at"]
    )
    trace = (await client.get(f"/api/tasks/{task['id']}/trace", headers=admin_headers)).json()[
        "items"
    ]
    assert [e["kind"] for e in trace] == [
        "task.submitted",
        "task.cancel_requested",
        "task.cancelled",
    ]
    again = await client.post(f"/api/tasks/{task['id']}/cancel", headers=admin_headers)
    assert again.status_code == 409
    assert (
        again.headers["content-type"].startswith(PROBLEM) and "cancelled" in again.json()["detail"]
    )
    trace2 = (await client.get(f"/api/tasks/{task['id']}/trace", headers=admin_headers)).json()[
        "items"
    ]
    assert len(trace2) == 3, "a refused cancel writes nothing"


async def test_members_read_all_but_cancel_only_their_own(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    counts: Any,
) -> None:
    admins = await submit(client, admin_headers)
    mine = await submit(client, member_headers)
    assert (
        await client.get(f"/api/tasks/{admins['id']}", headers=member_headers)
    ).status_code == 200
    assert len((await client.get("/api/tasks", headers=member_headers)).json()["items"]) == 2
    before = counts()
    r = await client.post(f"/api/tasks/{admins['id']}/cancel", headers=member_headers)
    assert r.status_code == 403 and r.headers["content-type"].startswith(PROBLEM)
    assert counts() == before
    assert (await client.get(f"/api/tasks/{admins['id']}", headers=admin_headers)).json()[
        "state"
    ] == "pending"
    assert (await client.post(f"/api/tasks/{mine['id']}/cancel", headers=member_headers)).json()[
        "state"
    ] == "cancelled"
    # …and an admin may cancel anyone's.
    other = await submit(client, member_headers)
    assert (await client.post(f"/api/tasks/{other['id']}/cancel", headers=admin_headers)).json()[
        "state"
    ] == "cancelled"


async def test_filters_state_owner_and_name(
    client: AsyncTestClient, admin_headers: dict[str, str], member_headers: dict[str, str]
) -> None:
    a1 = await submit(client, admin_headers, name="resnet-sweep-1")
    a2 = await submit(client, admin_headers, name="bert-finetune")
    m1 = await submit(client, member_headers, name="RESNET-member")
    await client.post(f"/api/tasks/{a2['id']}/cancel", headers=admin_headers)

    async def ids(**params: Any) -> set[str]:
        r = await client.get("/api/tasks", params=params, headers=member_headers)
        assert r.status_code == 200, r.text
        return {t["id"] for t in r.json()["items"]}

    assert await ids(state="pending") == {a1["id"], m1["id"]}
    assert await ids(state=["pending", "cancelled"]) == {a1["id"], a2["id"], m1["id"]}
    assert await ids(state="running") == set()
    assert await ids(owner="me") == {m1["id"]}
    assert await ids(owner=a1["owner_id"]) == {a1["id"], a2["id"]}
    assert await ids(q="resnet") == {a1["id"], m1["id"]}, "name search is case-insensitive"
    assert await ids(q="%") == set(), "LIKE wildcards are literal"
    assert await ids(q="resnet", owner="me") == {m1["id"]}
    assert await ids(node=str(uuid.uuid4())) == set()


@pytest.mark.parametrize(
    "params",
    [
        {"state": "runing"},
        {"owner": "someone"},
        {"limit": 0},
        {"limit": 501},
        {"node": "not-a-uuid"},
        {"cursor": "not-a-cursor"},
        {"cursor": base64.urlsafe_b64encode(b"x:12").decode()},
        {"cursor": base64.urlsafe_b64encode(b"s:twelve").decode()},
        {"cursor": "\u00e9\u00e9"},
        {"cursor": "x" * 201},
    ],
)
async def test_bad_list_queries_are_400(
    client: AsyncTestClient, admin_headers: dict[str, str], params: dict[str, Any]
) -> None:
    r = await client.get("/api/tasks", params=params, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)


async def test_cursor_pagination_has_no_duplicates_or_skips(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    created = [(await submit(client, admin_headers, name=f"t{i}"))["id"] for i in range(7)]
    pages: list[list[str]] = []
    cursor = None
    for _ in range(10):
        params: dict[str, Any] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get("/api/tasks", params=params, headers=admin_headers)).json()
        pages.append([t["id"] for t in page["items"]])
        cursor = page["next_cursor"]
        if cursor is None:
            break
        # A task submitted mid-listing lands on top and neither shifts nor repeats later pages.
        if len(pages) == 1:
            await submit(client, admin_headers, name="late")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert functools.reduce(operator.iadd, pages, []) == list(reversed(created)), (
        "newest first, each exactly once"
    )
    exact = (await client.get("/api/tasks", params={"limit": 8}, headers=admin_headers)).json()
    assert len(exact["items"]) == 8 and exact["next_cursor"] is None


async def test_retry_creates_a_new_task_with_the_same_spec(
    client: AsyncTestClient, admin_headers: dict[str, str], member_headers: dict[str, str]
) -> None:
    old = await submit(
        client,
        member_headers,
        env={"A": "1"},
        resources={"cpus": 2, "memory_mb": 1024, "gpus": 0, "labels": {"zone": "x"}},
    )
    await client.post(f"/api/tasks/{old['id']}/cancel", headers=admin_headers)
    r = await client.post(f"/api/tasks/{old['id']}/retry", headers=member_headers)  # the owner
    assert r.status_code == 201, r.text
    new = r.json()
    assert new["id"] != old["id"] and new["state"] == "pending" and new["owner"] == "mia"
    for field in (
        "code_repo_url",
        "code_commit_id",
        "env_repo_url",
        "env_commit_id",
        "dockerfile_path",
        "command",
        "env",
        "resources",
        "name",
    ):
        assert new[field] == old[field], field
    assert new["extra"]["retry_of"] == old["id"]
    assert (await client.get(f"/api/tasks/{old['id']}", headers=admin_headers)).json()[
        "state"
    ] == "cancelled"
    trace = (await client.get(f"/api/tasks/{new['id']}/trace", headers=admin_headers)).json()[
        "items"
    ]
    assert [e["kind"] for e in trace] == ["task.submitted"]


@pytest.mark.parametrize(
    "method, suffix",
    [("GET", ""), ("GET", "/trace"), ("POST", "/cancel"), ("POST", "/retry"), ("GET", "/logs")],
)
async def test_unknown_task_is_404(
    client: AsyncTestClient, admin_headers: dict[str, str], counts: Any, method: str, suffix: str
) -> None:
    before = counts()
    r = await client.request(method, f"/api/tasks/{uuid.uuid4()}{suffix}", headers=admin_headers)
    assert r.status_code == 404, r.text
    assert r.headers["content-type"].startswith(PROBLEM) and r.json()["status"] == 404
    assert counts() == before


async def test_malformed_task_id_is_404_not_500(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    r = await client.get("/api/tasks/not-a-uuid", headers=admin_headers)
    assert r.status_code in (400, 404) and r.headers["content-type"].startswith(PROBLEM)


async def test_list_counts_every_matching_task_when_asked(
    client: AsyncTestClient, admin_headers: dict[str, str]
) -> None:
    for i in range(3):
        await submit(client, admin_headers, name=f"count-{i}")
    await submit(client, admin_headers, name="other")
    plain = (await client.get("/api/tasks", headers=admin_headers)).json()
    assert plain["total"] is None  # counting costs a query: only on request
    r = await client.get(
        "/api/tasks", params={"q": "count-", "limit": 2, "total": "true"}, headers=admin_headers
    )
    page = r.json()
    assert (len(page["items"]), page["total"]) == (2, 3)
    assert page["items"][0]["started_at"] is None  # never started: the UI shows a wait
    assert page["items"][0]["node_name"] is None
    nxt = await client.get(
        "/api/tasks",
        params={"q": "count-", "limit": 2, "total": "true", "cursor": page["next_cursor"]},
        headers=admin_headers,
    )
    assert (len(nxt.json()["items"]), nxt.json()["total"]) == (1, 3)
    states = await client.get(
        "/api/tasks", params={"state": "running", "total": "true"}, headers=admin_headers
    )
    assert states.json()["total"] == 0


async def test_list_sorts_by_every_key_both_ways_through_cursors_and_offsets(
    client: AsyncTestClient, admin_headers: dict[str, str], database_url: str
) -> None:
    specs = [("beta", 3), ("Alpha", 1), ("gamma", 3), ("alpha", 0), ("Delta", 5), ("beta", 1)]
    made = [await submit(client, admin_headers, name=n, priority=p) for n, p in specs]
    for t in made[1::2]:  # three end cancelled (finished_at set), three stay pending
        await client.post(f"/api/tasks/{t['id']}/cancel", headers=admin_headers)
    with psycopg.connect(libpq_url(database_url)) as conn:  # two have started attempts
        for i, t in enumerate(made[2:4]):
            conn.execute(
                "INSERT INTO task_attempts (task_id, attempt_no, node_name, state, gpu_indices,"
                " log_bytes, log_truncated, started_at) VALUES (%s, 1, 'n', 'running', '[]', 0,"
                " false, now() - make_interval(secs => %s))",
                (t["id"], 60 * (i + 1)),
            )
            conn.execute("UPDATE tasks SET attempt_count = 1 WHERE id = %s", (t["id"],))
            conn.execute(  # the rule: no state change without its event
                "INSERT INTO events (kind, subject_type, subject_id, actor)"
                " VALUES ('task.started', 'task', %s, 'test')",
                (t["id"],),
            )
    full = {
        t["id"]: t
        for t in (
            await client.get("/api/tasks", params={"limit": 500}, headers=admin_headers)
        ).json()["items"]
    }
    order = [t["id"] for t in made]  # submission order

    def expected(sort: str) -> list[str]:
        key, desc = sort.lstrip("-"), sort.startswith("-")
        if key == "created_at":
            return order[::-1] if desc else order
        value = {
            "name": lambda t: t["name"].lower(),
            "state": lambda t: t["state"],
            "priority": lambda t: t["priority"],
            "started_at": lambda t: t["started_at"],
            "finished_at": lambda t: t["finished_at"],
        }[key]
        have = [i for i in order if value(full[i]) is not None]
        none = [i for i in order if value(full[i]) is None]
        have.sort(key=lambda i: (value(full[i]), order.index(i)), reverse=desc)
        return have + (none[::-1] if desc else none)

    for key in ("created_at", "name", "state", "priority", "started_at", "finished_at"):
        for sort in (key, f"-{key}"):
            want = expected(sort)
            seen: list[str] = []
            pages: list[dict[str, Any]] = []
            params: dict[str, Any] = {"sort": sort, "limit": 2}
            for _ in range(5):
                r = await client.get("/api/tasks", params=params, headers=admin_headers)
                assert r.status_code == 200, (sort, r.text)
                pages.append(r.json())
                seen += [t["id"] for t in r.json()["items"]]
                if not r.json()["next_cursor"]:
                    break
                params["cursor"] = r.json()["next_cursor"]
            assert seen == want, sort
            assert pages[0]["prev_cursor"] is None and pages[-1]["next_cursor"] is None
            # Back from the last page to the first through prev_cursor: the same pages.
            back = [[t["id"] for t in pages[-1]["items"]]]
            prev = pages[-1]["prev_cursor"]
            while prev:
                r = await client.get(
                    "/api/tasks",
                    params={"sort": sort, "limit": 2, "cursor": prev},
                    headers=admin_headers,
                )
                back.insert(0, [t["id"] for t in r.json()["items"]])
                assert r.json()["next_cursor"], sort
                prev = r.json()["prev_cursor"]
            assert back == [[t["id"] for t in p["items"]] for p in pages], sort
            # A page jump by offset lands where the cursors do, and pages on from there.
            r = await client.get(
                "/api/tasks", params={"sort": sort, "limit": 2, "offset": 4}, headers=admin_headers
            )
            assert [t["id"] for t in r.json()["items"]] == want[4:6], sort
            assert r.json()["prev_cursor"] and r.json()["next_cursor"] is None
    # A cursor belongs to its sort: another sort's cursor is refused, not misread.
    first = (
        await client.get("/api/tasks", params={"sort": "name", "limit": 2}, headers=admin_headers)
    ).json()
    r = await client.get(
        "/api/tasks",
        params={"sort": "-name", "cursor": first["next_cursor"]},
        headers=admin_headers,
    )
    assert r.status_code == 400 and "sort=name" in r.json()["detail"]


@pytest.mark.parametrize(
    "params",
    [
        {"sort": "size"},
        {"sort": "--name"},
        {"offset": -1},
        {"offset": 100_001},
        {"cursor": base64.urlsafe_b64encode(b"k:[]").decode()},
        {"cursor": base64.urlsafe_b64encode(b'k:["name",5,1,false]').decode(), "sort": "name"},
        {
            "cursor": base64.urlsafe_b64encode(b'k:["finished_at","x",1,false]').decode(),
            "sort": "finished_at",
        },
        {"cursor": base64.urlsafe_b64encode(b'k:["name","a","1",false]').decode(), "sort": "name"},
    ],
)
async def test_bad_sorts_offsets_and_cursors_are_400(
    client: AsyncTestClient, admin_headers: dict[str, str], params: dict[str, Any]
) -> None:
    r = await client.get("/api/tasks", params=params, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert r.headers["content-type"].startswith(PROBLEM)
