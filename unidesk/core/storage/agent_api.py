"""Output uploads of a node's attempts: ``/api/agent/attempts/{task_id}/{attempt_no}/outputs``.

The agent authenticates with its node token (``Authorization: Bearer udn_…``) and can obtain
URLs only for an attempt the server assigned to that very node and that has not ended yet
(403 otherwise, 409 once final). Outputs become artifacts named
``tasks/<task_id>/<attempt_no>/<path>``, owned by the task's owner and linked to the attempt;
``complete`` registers them and writes ``task.outputs`` in the same transaction.
"""

from __future__ import annotations

import uuid

from litestar import Controller, Request, post
from litestar.datastructures import State
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.services import NodeTokenService
from unidesk.core.events.writer import append
from unidesk.core.nodes.models import NodeRow
from unidesk.core.settings import Settings
from unidesk.core.storage import schemas
from unidesk.core.storage.models import ArtifactRow
from unidesk.core.storage.protocol import UploadPlan
from unidesk.core.storage.services import ArtifactService, Creator, artifact_out
from unidesk.core.tasks.models import ATTEMPT_ACTIVE_STATES, AttemptRow, TaskRow
from unidesk.core.tasks.transitions import task_event
from unidesk.errors import Conflict, Forbidden, Unauthenticated

__all__ = ["AgentOutputController"]


async def _fenced(
    db: AsyncSession, request: Request, task_id: uuid.UUID, attempt_no: int
) -> tuple[NodeRow, TaskRow]:
    scheme, _, secret = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthenticated("send 'Authorization: Bearer <node token>'")
    token = await NodeTokenService(db).resolve(secret.strip())
    node = await db.scalar(select(NodeRow).where(NodeRow.token_id == token.id))
    attempt = await db.get(AttemptRow, (task_id, attempt_no))
    if node is None or attempt is None or attempt.node_id != node.id:
        raise Forbidden(
            "this attempt is not assigned to this node", task_id=str(task_id), attempt_no=attempt_no
        )
    if attempt.state not in ATTEMPT_ACTIVE_STATES:
        raise Conflict(f"attempt {attempt_no} is already {attempt.state}", task_id=str(task_id))
    task = await db.get(TaskRow, task_id)
    assert task is not None
    return node, task


def _node_may_write(task_id: uuid.UUID, attempt_no: int):
    def check(row: ArtifactRow) -> None:
        if row.task_id != task_id or row.attempt_no != attempt_no:
            raise Forbidden(
                "this artifact is not an output of this attempt", artifact_id=str(row.id)
            )

    return check


class AgentOutputController(Controller):
    path = "/api/agent/attempts/{task_id:uuid}/{attempt_no:int}/outputs"
    tags = ("agent",)
    security = ({"node": []},)

    @post("/", operation_id="request_output_uploads", status_code=200, exclude_from_auth=True)
    async def request_uploads(
        self,
        task_id: uuid.UUID,
        attempt_no: int,
        data: schemas.OutputRequest,
        request: Request,
        db: AsyncSession,
        settings: Settings,
        state: State,
    ) -> schemas.OutputGrant:
        """Presigned upload plans for this attempt's output files (idempotent per path)."""
        node, task = await _fenced(db, request, task_id, attempt_no)
        service = ArtifactService(db, state.object_store, settings)
        creator = Creator(
            actor=f"node:{node.name}",
            owner_id=task.owner_id,
            task_id=task_id,
            attempt_no=attempt_no,
        )
        items = []
        for f in data.files:
            name = f"tasks/{task_id}/{attempt_no}/{f.path}"
            existing = await db.scalar(select(ArtifactRow).where(ArtifactRow.name == name))
            if existing is not None:
                _node_may_write(task_id, attempt_no)(existing)
                if existing.sha256 != f.sha256 or existing.size != f.size:
                    raise Conflict(
                        f"output {f.path} was declared before with other content", name=name
                    )
                if existing.state == "ready":
                    items.append(
                        schemas.ArtifactUpload(
                            artifact=artifact_out(existing, None), upload=UploadPlan(offset=f.size)
                        )
                    )
                else:
                    items.append(await service.resume(str(existing.id), may_write=lambda r: None))
                continue
            items.append(
                await service.create(
                    schemas.ArtifactCreate(
                        name=name, size=f.size, sha256=f.sha256, content_type=f.content_type
                    ),
                    creator,
                )
            )
        return schemas.OutputGrant(items=items)

    @post(
        "/complete", operation_id="complete_output_uploads", status_code=200, exclude_from_auth=True
    )
    async def complete(
        self,
        task_id: uuid.UUID,
        attempt_no: int,
        data: schemas.OutputsComplete,
        request: Request,
        db: AsyncSession,
        settings: Settings,
        state: State,
    ) -> schemas.OutputGrant:
        """Register the uploaded outputs as ready artifacts linked to the attempt."""
        node, _ = await _fenced(db, request, task_id, attempt_no)
        service = ArtifactService(db, state.object_store, settings)
        done = []
        for item in data.items:
            artifact = await service.complete(
                item.artifact_id,
                item.parts,
                actor=f"node:{node.name}",
                may_write=_node_may_write(task_id, attempt_no),
                commit=False,
            )
            done.append(artifact)
        await append(
            db,
            task_event(
                task_id,
                "task.outputs",
                f"node:{node.name}",
                attempt_no=attempt_no,
                artifacts=[{"id": str(a.id), "name": a.name, "size": a.size} for a in done],
            ),
        )
        await db.commit()
        return schemas.OutputGrant(
            items=[
                schemas.ArtifactUpload(artifact=a, upload=UploadPlan(offset=a.size)) for a in done
            ]
        )
