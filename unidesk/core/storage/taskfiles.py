"""Tasks and files: pin declared inputs at submit, put presigned GET URLs into each dispatch.

At submit, each input (artifact id or name) is resolved to a ready artifact and stored in
``tasks.extra["inputs"]`` with its mount path; output patterns are normalised relative to
/workspace/outputs into ``extra["outputs"]``. At dispatch, ``file_url_extender`` adds one
short-lived URL per input (``storage_url_ttl_s``); the bytes never travel in the message.
"""

from __future__ import annotations

import posixpath
import uuid
from typing import Any

import msgspec
from litestar.datastructures import State
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk import protocol
from unidesk.core.storage.models import ArtifactRow
from unidesk.core.storage.schemas import TaskInput
from unidesk.errors import BadRequest, Conflict, NotFound

__all__ = [
    "OUTPUTS_DIR",
    "attach_file_urls",
    "check_input_path",
    "check_output_pattern",
    "file_url_extender",
    "resolve_task_files",
]

OUTPUTS_DIR = "/workspace/outputs"


def check_input_path(path: str) -> str:
    """Absolute, normalised, strictly under /workspace or /inputs, not in the outputs dir."""
    if "\x00" in path or not path.startswith("/") or posixpath.normpath(path) != path:
        raise BadRequest(
            f"inputs: path {path[:200]!r} must be absolute and normalised (no '..', '.', '//')",
            field="inputs",
        )
    if (
        not (path.startswith(("/workspace/", "/inputs/")))
        or path.startswith(OUTPUTS_DIR + "/")
        or path == OUTPUTS_DIR
    ):
        raise BadRequest(
            f"inputs: path {path[:200]!r} must lie under /workspace or /inputs (not "
            "/workspace/outputs)",
            field="inputs",
        )
    return path


def check_output_pattern(pattern: str) -> str:
    """A glob relative to /workspace/outputs (an absolute one must start there); no '..'; a
    directory takes all its files."""
    rel = (
        pattern[len(OUTPUTS_DIR) + 1 :] if pattern.startswith(OUTPUTS_DIR + "/") else pattern
    ).rstrip("/")
    if (
        "\x00" in rel
        or rel.startswith("/")
        or not rel
        or any(p in ("", ".", "..") for p in rel.split("/"))
    ):
        raise BadRequest(
            f"outputs: {pattern[:200]!r} must be a path or glob under {OUTPUTS_DIR} without '..'",
            field="outputs",
        )
    return rel


async def _artifact(session: AsyncSession, ref: str) -> ArtifactRow:
    try:
        cond = ArtifactRow.id == uuid.UUID(ref)
    except ValueError:
        cond = ArtifactRow.name == ref
    row = await session.scalar(select(ArtifactRow).where(cond))
    if row is None:
        raise NotFound(f"inputs: no artifact {ref[:200]!r}", field="inputs")
    if row.state != "ready":
        raise Conflict(f"inputs: artifact {ref[:200]!r} is still uploading", field="inputs")
    return row


async def resolve_task_files(
    session: AsyncSession, inputs: list[TaskInput], outputs: list[str]
) -> dict[str, Any]:
    """The ``extra`` entries of a submission that declares files (empty when it declares none)."""
    out: dict[str, Any] = {}
    if inputs:
        pinned, paths = [], set()
        for item in inputs:
            row = await _artifact(session, item.artifact)
            path = check_input_path(item.path or f"/inputs/{row.name.rsplit('/', 1)[-1]}")
            if path in paths:
                raise BadRequest(f"inputs: two inputs mounted at {path}", field="inputs")
            paths.add(path)
            pinned.append(
                {
                    "artifact_id": str(row.id),
                    "name": row.name,
                    "path": path,
                    "sha256": row.sha256,
                    "size": row.size,
                }
            )
        out["inputs"] = pinned
    if outputs:
        out["outputs"] = [check_output_pattern(p) for p in outputs]
    return out


def file_url_extender(state: State) -> Any:
    """The ``Delivery`` hook: presigned GET URLs for a dispatch's inputs, and its output
    patterns."""

    async def extend(
        session: AsyncSession, task: Any, attempt: Any, dispatch: protocol.Dispatch
    ) -> protocol.Dispatch | None:
        inputs = task.extra.get("inputs") or []
        outputs = task.extra.get("outputs") or []
        if not inputs and not outputs:
            return None
        rows = (
            {
                str(r.id): r
                for r in (
                    await session.scalars(
                        select(ArtifactRow).where(
                            ArtifactRow.id.in_([uuid.UUID(i["artifact_id"]) for i in inputs])
                        )
                    )
                ).all()
            }
            if inputs
            else {}
        )
        store, ttl = state.object_store, state.settings.storage_url_ttl_s
        files = []
        for item in inputs:
            row = rows.get(item["artifact_id"])
            url = (
                await store.presign_get(row.key, expires_s=ttl)
                if row is not None and row.state == "ready"
                else ""
            )
            files.append(
                protocol.FileInput(
                    artifact_id=item["artifact_id"],
                    name=item["name"],
                    url=url,
                    sha256=item["sha256"],
                    size=int(item["size"]),
                    path=item["path"],
                )
            )
        return msgspec.structs.replace(
            dispatch, inputs=files, outputs=[protocol.FileOutput(pattern=p) for p in outputs]
        )

    return extend


def attach_file_urls(state: State) -> None:
    """Component factory (runs after the ingress one): register the extender; starts nothing."""
    ingress = getattr(state, "ingress", None)
    if ingress is not None:
        ingress.delivery.extenders.append(file_url_extender(state))
