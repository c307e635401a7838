"""docs/access.md's route table is what the server does: every operation of the OpenAPI schema
is called as anonymous, the owning member, another member, an admin and a node token.

A cell says ``yes`` when the call gets past authentication and authorization (any answer but
401/403: a 404 for a made-up id still means the caller may use the route), ``owner`` when the
owning member gets through and another member gets 403, ``no`` otherwise. Regenerate the
table with ``UNIDESK_WRITE_ACCESS_DOC=1 pytest tests/core/test_access_table.py``.
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from litestar.testing import AsyncTestClient

from tests.conftest import ADMIN_PASSWORD, login
from tests.core.conftest import task_body

DOC = Path(__file__).resolve().parents[2] / "docs" / "access.md"
BEGIN, END = "<!-- routes:begin -->", "<!-- routes:end -->"
ROLES = ("anonymous", "member", "other member", "admin", "node token")
STREAMS = {"stream_events", "task_logs_stream"}
"""Endpoints that never end: only their refusals are walked (they answer before streaming)."""
BODIES: dict[str, Any] = {
    "request_output_uploads": {"files": [{"path": "a.txt", "size": 1, "sha256": "0" * 64}]},
    "complete_output_uploads": {"items": [{"artifact_id": str(uuid.UUID(int=1))}]},
    "put_global_secret": {"value": "walker-value"},
    "put_project_secret": {"value": "walker-value"},
    "put_user_secret": {"value": "walker-value"},
}
"""Bodies that pass validation, so the walk reaches the route's own permission check."""
LAST = {"logout"}
"""Ends the caller's session: walked after everything else."""


def _fill(path: str, task_id: str) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "task_id":
            return task_id
        if name == "attempt_no":
            return "1"
        if name == "name":
            return "no-such-file"
        return str(uuid.uuid4())

    return re.sub(r"\{([a-z_]+)\}", one, path)


def _cell(status: int) -> str:
    return "no" if status in (401, 403) else "yes"


async def _walk(client: AsyncTestClient) -> list[tuple[str, str, str, list[str]]]:
    admin = await login(client, "admin", ADMIN_PASSWORD)
    for name in ("mia", "otto"):
        r = await client.post(
            "/api/users",
            json={"username": name, "password": f"{name}-password", "role": "member"},
            headers=admin,
        )
        assert r.status_code == 201, r.text
    member = await login(client, "mia", "mia-password")
    other = await login(client, "otto", "otto-password")
    node = await client.post("/api/node-tokens", json={"name": "walker"}, headers=admin)
    headers: dict[str, dict[str, str]] = {
        "anonymous": {},
        "member": member,
        "other member": other,
        "admin": admin,
        "node token": {"Authorization": f"Bearer {node.json()['secret']}"},
    }
    r = await client.post("/api/tasks", json=task_body(), headers=member)
    task_id = r.json()["id"]
    schema = (await client.get("/schema/openapi.json")).json()
    ops = [
        (method.upper(), path, op["operationId"])
        for path, item in schema["paths"].items()
        for method, op in item.items()
        if method in ("get", "post", "put", "patch", "delete")
    ]
    ops.sort(key=lambda o: (o[2] in LAST, o[1], o[0]))
    rows = []
    for method, path, op_id in ops:
        cells = []
        for role in ("anonymous", "node token", "other member", "member", "admin"):
            if op_id in STREAMS and role in ("other member", "member", "admin"):
                cells.append((role, "yes"))
                continue
            body: Any = BODIES.get(op_id, {} if method in ("POST", "PATCH", "PUT") else None)
            r = await client.request(method, _fill(path, task_id), json=body, headers=headers[role])
            assert r.status_code < 500, (method, path, role, r.status_code, r.text)
            cells.append((role, _cell(r.status_code)))
        by_role = dict(cells)
        if by_role["member"] == "yes" and by_role["other member"] == "no":
            by_role["member"] = "owner"
        rows.append((method, path, op_id, [by_role[r] for r in ROLES]))
    return rows


def _table(rows: list[tuple[str, str, str, list[str]]]) -> str:
    lines = [
        "| method | path | operation | " + " | ".join(ROLES) + " |",
        "|---|---|---|" + "---|" * len(ROLES),
    ]
    for method, path, op_id, cells in rows:
        lines.append(f"| {method} | `{path}` | `{op_id}` | " + " | ".join(cells) + " |")
    return "\n".join(lines)


@pytest.mark.plugins  # the page lists the built-in plugins' routes too
async def test_access_doc_lists_every_route_as_the_server_enforces_it(
    client: AsyncTestClient,
) -> None:
    table = _table(await _walk(client))
    text = DOC.read_text()
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    fresh = f"{head}{BEGIN}\n{table}\n{END}{tail}"
    if os.environ.get("UNIDESK_WRITE_ACCESS_DOC") == "1":
        DOC.write_text(fresh)
    assert text == fresh, (
        "docs/access.md is stale: regenerate with "
        "UNIDESK_WRITE_ACCESS_DOC=1 pytest tests/core/test_access_table.py"
    )
