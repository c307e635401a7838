"""The task list's items (encoded straight from rows) equal the task page's, field by field."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from litestar.testing import AsyncTestClient

from tests.core.conftest import task_body
from unidesk.core.db.engine import libpq_url


def canonical(task: dict[str, Any]) -> str:
    """Field values as JSON text, keys sorted: ``1.0`` and ``1`` differ, as do time formats."""
    return json.dumps({k: v for k, v in task.items() if k != "attempts"}, sort_keys=True)


async def test_list_items_equal_the_task_page_for_every_kind_of_value(
    client: AsyncTestClient,
    admin_headers: dict[str, str],
    member_headers: dict[str, str],
    database_url: str,
) -> None:
    odd = 'quote " back \\ slash / tab \t nl \n bell \x07 é 中文 \U0001f680'
    responses = [
        await client.post("/api/tasks", json=task_body(**kw), headers=h)
        for h, kw in [
            (admin_headers, {}),
            (
                admin_headers,
                {"name": odd, "env": {"K": odd, "E": ""}, "priority": -3, "account": "lab:x"},
            ),
            (
                member_headers,
                {
                    "resources": {"cpus": 1.5, "memory_mb": 300, "labels": {"zone": "a/b"}},
                    "expected_duration_s": 30,
                },
            ),
            (member_headers, {"resources": {"cpus": 2, "memory_mb": 256, "gpus": 0}}),
            (admin_headers, {"command": "echo 'x' && exit 3", "retry_on_failure": True}),
        ]
    ]
    assert [r.status_code for r in responses] == [201] * 5, [r.text for r in responses]
    ids = [r.json()["id"] for r in responses]
    with psycopg.connect(libpq_url(database_url)) as conn:
        # Values a submit alone does not make: secrets and pids_limit in extra, a pending
        # reason with detail and backoff, whole-second and sub-second times, tiny floats,
        # attempts (the latest one's start and node are listed), a finished task, no owner.
        conn.execute(
            "UPDATE tasks SET extra = extra || jsonb_build_object('pids_limit', 64, 'secrets',"
            " jsonb_build_object('TOKEN', jsonb_build_object('ref', 'hf-token', 'v', 1)),"
            " 'nested', jsonb_build_object('f', 1.0, 'n', null, 'l', jsonb_build_array(1, 'a')))"
            " WHERE id = %s",
            (ids[0],),
        )
        conn.execute(
            "UPDATE tasks SET pending_reason = 'retry_backoff', pending_detail = NULL,"
            " not_before = date_trunc('second', now()) + interval '1 hour',"
            " created_at = date_trunc('second', created_at), cpus = 0.000001 WHERE id = %s",
            (ids[1],),
        )
        conn.execute(
            "UPDATE tasks SET pending_reason = 'no_node_fits', pending_detail ="
            ' \'{"message": "no node has 1.5 CPUs", "nodes": 0}\' WHERE id = %s',
            (ids[2],),
        )
        for no, node in ((1, "node-a"), (2, "")):
            conn.execute(
                "INSERT INTO task_attempts (task_id, attempt_no, node_name, state, gpu_indices,"
                " log_bytes, log_truncated, started_at) VALUES (%s, %s, %s, 'running', '[0]',"
                " 0, false, now() - make_interval(secs => %s))",
                (ids[3], no, node, 10 * no),
            )
        conn.execute(
            "INSERT INTO task_attempts (task_id, attempt_no, node_name, state, gpu_indices,"
            " log_bytes, log_truncated) VALUES (%s, 1, 'node-b', 'assigned', '[]', 0, false)",
            (ids[4],),
        )
        conn.execute(
            "UPDATE tasks SET attempt_count = 2, state = 'running', pending_reason = NULL"
            " WHERE id = %s",
            (ids[3],),
        )
        conn.execute(
            "UPDATE tasks SET attempt_count = 1, state = 'failed', reason = 'exit_code',"
            " message = 'exit 3', finished_at = date_trunc('second', now()), owner_id = NULL,"
            " pending_reason = 'no_node_fits', pending_detail = '{}' WHERE id = %s",
            (ids[4],),
        )
        for task_id, kind in ((ids[3], "task.started"), (ids[4], "task.failed")):
            conn.execute(  # the rule: no state change without its event
                "INSERT INTO events (kind, subject_type, subject_id, actor)"
                " VALUES (%s, 'task', %s, 'test')",
                (kind, task_id),
            )
    for headers in (admin_headers, member_headers):
        listed = (await client.get("/api/tasks", headers=headers)).json()
        assert sorted(t["id"] for t in listed["items"]) == sorted(ids)
        for item in listed["items"]:
            assert item["attempts"] is None
            got = (await client.get(f"/api/tasks/{item['id']}", headers=headers)).json()
            assert canonical(item) == canonical(got), item["name"]
    by_id = {t["id"]: t for t in listed["items"]}  # the member's view
    assert by_id[ids[0]]["secrets"] == {"TOKEN": "hf-token"}
    assert by_id[ids[0]]["resources"]["pids_limit"] == 64
    assert by_id[ids[1]]["pending_detail"] == {} and by_id[ids[1]]["name"] == odd
    assert by_id[ids[3]]["node_name"] is None and by_id[ids[3]]["started_at"]
    assert by_id[ids[4]]["pending_reason"] is None and by_id[ids[4]]["owner"] is None
    assert [by_id[i]["allowed_actions"] != [] for i in ids] == [False, False, True, True, False]
