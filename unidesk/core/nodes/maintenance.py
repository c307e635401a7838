"""Admin-only host.ssh maintenance (the service behind ``POST /api/nodes/{id}/maintenance``).

A request becomes a task with ``extra = {"kind": "host.ssh", "runtime": "host.ssh", "node_id": …,
"params": {…}}``; the scheduler routes it only to that node's ``host.ssh`` runtime (even when
the node is draining or unhealthy, which is when an admin needs it), never retries it, and
never routes anything else through that runtime. The request itself is an audited event
(``node.maintenance_requested``) written with the task in one transaction.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.schemas import Principal
from unidesk.core.events.writer import append
from unidesk.core.nodes.models import NodeRow
from unidesk.core.nodes.schemas import MaintenanceCreate
from unidesk.core.nodes.services import node_event
from unidesk.core.tasks import schemas
from unidesk.core.tasks.models import TaskRow
from unidesk.core.tasks.services import task_out
from unidesk.core.tasks.transitions import task_event
from unidesk.errors import BadRequest, Conflict, NotFound

__all__ = ["HOST_SSH", "create_maintenance_task"]

HOST_SSH = "host.ssh"


def _validate(data: MaintenanceCreate) -> None:
    if data.op == "exec" and not (data.command or "").strip():
        raise BadRequest("command: exec needs a command", field="command")
    if data.op == "probe" and data.command is not None:
        raise BadRequest("command: probe takes no command", field="command")
    if data.command is not None and "\x00" in data.command:
        raise BadRequest("command: NUL bytes are not allowed", field="command")


async def create_maintenance_task(
    s: AsyncSession, node_id: uuid.UUID, data: MaintenanceCreate, principal: Principal
) -> schemas.Task:
    _validate(data)
    node = await s.get(NodeRow, node_id)
    if node is None:
        raise NotFound(f"node {node_id} not found", node_id=str(node_id))
    if HOST_SSH not in node.runtimes:
        raise Conflict(
            f"node {node.name} does not offer the host.ssh runtime (set ssh_host in its agent "
            "config)",
            node_id=str(node_id),
        )
    if node.state != "online":
        raise Conflict(
            f"node {node.name} is {node.state}; host.ssh needs its agent connected",
            node_id=str(node_id),
        )
    params = {
        "op": data.op,
        "timeout_s": str(data.timeout_s),
        **({"command": data.command} if data.command else {}),
    }
    command = [HOST_SSH, data.op, *([data.command] if data.command else [])]
    row = TaskRow(
        id=uuid.uuid4(),
        name=f"{HOST_SSH} {data.op} on {node.name}"
        + (f": {data.command}"[:120] if data.command else ""),
        owner_id=principal.user_id,
        state="pending",
        code_repo_url="",
        code_commit_id="",
        env_repo_url="",
        env_commit_id="",
        dockerfile_path="",
        command=command,
        env={},
        cpus=0.0,
        memory_mb=0,
        gpus=0,
        labels={},
        timeout_s=data.timeout_s,
        priority=1000,
        max_attempts=1,
        retry_on_failure=False,
        extra={"kind": HOST_SSH, "runtime": HOST_SSH, "node_id": str(node_id), "params": params},
    )
    s.add(row)
    await s.flush()
    audit = {"op": data.op, "command": data.command, "timeout_s": data.timeout_s, "node": node.name}
    await append(
        s, task_event(row.id, "task.submitted", principal.actor, spec={"kind": HOST_SSH, **audit})
    )
    await append(
        s,
        node_event(
            node_id, "node.maintenance_requested", principal.actor, task_id=str(row.id), **audit
        ),
    )
    await s.commit()
    await s.refresh(row)
    return task_out(row, principal.username, [])
