"""Artifacts: declare, complete, list, download, delete; the only code touching the artifacts table.

Every change writes its event (``artifact.upload_started``, ``artifact.created``,
``artifact.upload_failed``, ``artifact.deleted``) in the same transaction as the row.
"""

from __future__ import annotations

import base64
import builtins
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.models import User
from unidesk.core.auth.policy import require_owner_or_admin
from unidesk.core.events.kinds import EventKind
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.settings import Settings
from unidesk.core.storage import schemas
from unidesk.core.storage.models import ArtifactRow
from unidesk.core.storage.protocol import ObjectStore
from unidesk.errors import BadRequest, Conflict, NotFound, PayloadTooLarge

__all__ = [
    "MAX_FOLDERS",
    "ArtifactService",
    "Creator",
    "artifact_event",
    "artifact_out",
    "check_name",
    "owner_or_admin",
]

MAX_FOLDERS = 500
"""Next-level folders one artifact listing names (``delimiter=/``)."""


def artifact_event(row: ArtifactRow, kind: EventKind, actor: str, **payload: Any) -> NewEvent:
    return NewEvent(
        kind=kind,
        subject_type="artifact",
        subject_id=str(row.id),
        actor=actor,
        payload={"name": row.name, **payload},
    )


def artifact_out(row: ArtifactRow, owner: str | None) -> schemas.Artifact:
    return schemas.Artifact(
        id=row.id,
        name=row.name,
        state=row.state,
        size=row.size,
        sha256=row.sha256,
        content_type=row.content_type,
        backend=row.backend,
        owner_id=row.owner_id,
        owner=owner,
        task_id=row.task_id,
        attempt_no=row.attempt_no,
        project=row.project,
        labels=dict(row.labels),
        created_at=row.created_at,
        ready_at=row.ready_at,
    )


def check_name(name: str) -> str:
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise BadRequest("name: no empty, '.' or '..' segments", field="name")
    return name


class Creator:
    """Who makes an artifact: a user, or a task attempt on a node (owner = the task's owner)."""

    def __init__(
        self,
        *,
        actor: str,
        owner_id: uuid.UUID | None,
        task_id: uuid.UUID | None = None,
        attempt_no: int | None = None,
    ) -> None:
        self.actor, self.owner_id, self.task_id, self.attempt_no = (
            actor,
            owner_id,
            task_id,
            attempt_no,
        )


class ArtifactService:
    def __init__(self, session: AsyncSession, store: ObjectStore, settings: Settings) -> None:
        self.s = session
        self.store = store
        self.settings = settings

    # -- lookups ---------------------------------------------------------------------------

    async def row(self, ref: str | uuid.UUID, *, lock: bool = False) -> ArtifactRow:
        """By id, else by name."""
        try:
            cond = ArtifactRow.id == (ref if isinstance(ref, uuid.UUID) else uuid.UUID(ref))
        except ValueError:
            cond = ArtifactRow.name == ref
        stmt = select(ArtifactRow).where(cond)
        row = await self.s.scalar(stmt.with_for_update() if lock else stmt)
        if row is None:
            raise NotFound(f"artifact {str(ref)[:200]} not found")
        return row

    async def _owner_name(self, row: ArtifactRow) -> str | None:
        return (
            await self.s.scalar(select(User.username).where(User.id == row.owner_id))
            if row.owner_id
            else None
        )

    async def get(self, ref: str) -> schemas.Artifact:
        row = await self.row(ref)
        return artifact_out(row, await self._owner_name(row))

    async def list(
        self,
        *,
        q: str | None,
        state: str | None,
        owner: uuid.UUID | None,
        task_id: uuid.UUID | None,
        limit: int,
        cursor: str | None,
        prefix: str | None = None,
        folders: bool = False,
    ) -> schemas.ArtifactPage:
        """A page of artifacts, newest first. ``folders``: only the names with no ``/`` after
        ``prefix``, plus (first page) the next-level prefixes below it."""
        filters = []
        if q:
            filters.append(ArtifactRow.name.icontains(q, autoescape=True))
        if prefix:
            filters.append(ArtifactRow.name.startswith(prefix, autoescape=True))
        if state:
            filters.append(ArtifactRow.state == state)
        if owner:
            filters.append(ArtifactRow.owner_id == owner)
        if task_id:
            filters.append(ArtifactRow.task_id == task_id)
        rest = func.substr(ArtifactRow.name, len(prefix or "") + 1)
        subfolders: list[str] = []
        if folders:
            if cursor is None:
                sub = func.split_part(rest, "/", 1)
                found = await self.s.scalars(
                    select(sub)
                    .where(*filters, func.strpos(rest, "/") > 0)
                    .group_by(sub)
                    .order_by(sub)
                    .limit(MAX_FOLDERS)
                )
                subfolders = [f"{prefix or ''}{name}/" for name in found]
            filters.append(func.strpos(rest, "/") == 0)
        stmt = (
            select(ArtifactRow, User.username)
            .outerjoin(User, User.id == ArtifactRow.owner_id)
            .where(*filters)
        )
        if cursor:
            at, after = _decode_cursor(cursor)
            stmt = stmt.where(
                (ArtifactRow.created_at < at)
                | ((ArtifactRow.created_at == at) & (ArtifactRow.id < after))
            )
        rows = (
            await self.s.execute(
                stmt.order_by(ArtifactRow.created_at.desc(), ArtifactRow.id.desc()).limit(limit + 1)
            )
        ).all()
        items = [artifact_out(r, name) for r, name in rows[:limit]]
        nxt = _encode_cursor(rows[limit - 1][0]) if len(rows) > limit else None
        return schemas.ArtifactPage(items=items, next_cursor=nxt, folders=subfolders)

    # -- uploads ---------------------------------------------------------------------------

    async def create(
        self, data: schemas.ArtifactCreate, creator: Creator
    ) -> schemas.ArtifactUpload:
        """Insert the row (``uploading``) with its event and plan the upload. A name already
        taken, or being uploaded by someone else at this moment, is a 409."""
        check_name(data.name)
        if data.size > self.settings.storage_max_upload_bytes:
            raise PayloadTooLarge(
                f"size: at most {self.settings.storage_max_upload_bytes} bytes per artifact"
            )
        if await self.s.scalar(select(ArtifactRow.id).where(ArtifactRow.name == data.name)):
            raise Conflict(
                f"an artifact named {data.name!r} exists or is being uploaded", name=data.name
            )
        artifact_id = uuid.uuid4()
        key = f"artifacts/{artifact_id}"
        plan = await self.store.plan_upload(
            key, size=data.size, sha256=data.sha256, expires_s=self.settings.storage_url_ttl_s
        )
        row = ArtifactRow(
            id=artifact_id,
            name=data.name,
            state="uploading",
            size=data.size,
            sha256=data.sha256,
            content_type=data.content_type,
            backend=self.store.backend,
            key=key,
            upload_id=plan.upload_id,
            owner_id=creator.owner_id,
            task_id=creator.task_id,
            attempt_no=creator.attempt_no,
            project=data.project,
            labels=dict(data.labels),
        )
        self.s.add(row)
        try:
            await self.s.flush()
            await append(
                self.s,
                artifact_event(
                    row,
                    "artifact.upload_started",
                    creator.actor,
                    size=data.size,
                    sha256=data.sha256,
                    backend=row.backend,
                    **_origin(creator),
                ),
            )
            await self.s.commit()
        except IntegrityError:
            await self.s.rollback()
            await self.store.abort_upload(key, upload_id=plan.upload_id)
            raise Conflict(
                f"an artifact named {data.name!r} exists or is being uploaded", name=data.name
            ) from None
        await self.s.refresh(row)
        return schemas.ArtifactUpload(
            artifact=artifact_out(row, await self._owner_name(row)), upload=plan
        )

    async def resume(self, ref: str, *, may_write: Any) -> schemas.ArtifactUpload:
        """A fresh plan (new URLs, offset or parts already held) for an unfinished upload."""
        row = await self.row(ref)
        may_write(row)
        if row.state == "ready":
            raise Conflict("the upload is already complete", artifact_id=str(row.id))
        plan = await self.store.plan_upload(
            row.key,
            size=row.size,
            sha256=row.sha256,
            expires_s=self.settings.storage_url_ttl_s,
            upload_id=row.upload_id,
        )
        return schemas.ArtifactUpload(
            artifact=artifact_out(row, await self._owner_name(row)), upload=plan
        )

    async def complete(
        self,
        ref: str | uuid.UUID,
        parts: builtins.list[schemas.CompletedPart],
        *,
        actor: str,
        may_write: Any,
        commit: bool = True,
    ) -> schemas.Artifact:
        """Check the store holds the whole object and mark the artifact ``ready`` (idempotent)."""
        row = await self.row(ref, lock=True)
        may_write(row)
        if row.state != "ready":
            try:
                await self.store.complete_upload(
                    row.key,
                    size=row.size,
                    sha256=row.sha256,
                    upload_id=row.upload_id,
                    parts=[(p.part_number, p.etag) for p in parts],
                )
            except Conflict as exc:
                if exc.context.get("removed"):
                    await self._drop(row, "artifact.upload_failed", actor, reason=exc.detail)
                    await self.s.commit()
                raise
            row.state, row.upload_id, row.ready_at = "ready", None, datetime.now(UTC)
            await append(
                self.s,
                artifact_event(
                    row,
                    "artifact.created",
                    actor,
                    size=row.size,
                    sha256=row.sha256,
                    backend=row.backend,
                    task_id=str(row.task_id) if row.task_id else None,
                    attempt_no=row.attempt_no,
                ),
            )
            if commit:
                await self.s.commit()
        return artifact_out(row, await self._owner_name(row))

    async def download_url(self, ref: str) -> schemas.DownloadUrl:
        row = await self.row(ref)
        if row.state != "ready":
            raise Conflict("the artifact is still uploading", artifact_id=str(row.id))
        ttl = self.settings.storage_url_ttl_s
        url = await self.store.presign_get(
            row.key, expires_s=ttl, filename=row.name.rsplit("/", 1)[-1]
        )
        return schemas.DownloadUrl(
            url=url,
            expires_at=datetime.now(UTC).timestamp() + ttl,
            name=row.name,
            size=row.size,
            sha256=row.sha256,
        )

    async def delete(self, ref: str, *, actor: str, may_write: Any) -> None:
        """Row and event first, object next, commit last: a store failure rolls the row back."""
        row = await self.row(ref, lock=True)
        may_write(row)
        await self._drop(row, "artifact.deleted", actor)
        await self.s.commit()

    async def _drop(self, row: ArtifactRow, kind: EventKind, actor: str, **payload: Any) -> None:
        await append(self.s, artifact_event(row, kind, actor, state=row.state, **payload))
        await self.s.delete(row)
        await self.s.flush()
        await self.store.abort_upload(row.key, upload_id=row.upload_id)
        await self.store.delete(row.key)


def owner_or_admin(principal: Any) -> Any:
    """A ``may_write`` check: the artifact's owner or an admin."""

    def check(row: ArtifactRow) -> None:
        require_owner_or_admin(
            principal, row.owner_id, kind="artifact", verb="change", artifact_id=str(row.id)
        )

    return check


def _origin(creator: Creator) -> dict[str, Any]:
    return (
        {"task_id": str(creator.task_id), "attempt_no": creator.attempt_no}
        if creator.task_id
        else {}
    )


def _encode_cursor(row: ArtifactRow) -> str:
    return (
        base64.urlsafe_b64encode(f"{row.created_at.isoformat()}|{row.id}".encode())
        .decode()
        .rstrip("=")
    )


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        at, _, ident = raw.partition("|")
        return datetime.fromisoformat(at), uuid.UUID(ident)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("cursor: not a cursor returned by this API") from None
