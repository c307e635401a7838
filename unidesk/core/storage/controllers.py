"""``/api/files``: declare an upload (presigned PUT or S3 parts), complete, list, download URL,
delete."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from litestar import Controller, Request, Response, delete, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.schemas import Principal
from unidesk.core.db.readcache import cached_answer
from unidesk.core.deps import owner_filter
from unidesk.core.settings import Settings
from unidesk.core.storage import schemas
from unidesk.core.storage.services import ArtifactService, Creator, owner_or_admin

__all__ = ["ArtifactController"]


def _service(db: AsyncSession, state: State, settings: Settings) -> ArtifactService:
    return ArtifactService(db, state.object_store, settings)


class ArtifactController(Controller):
    path = "/api/files"
    tags = ("files",)

    @post("/", operation_id="create_artifact", status_code=201)
    async def create(
        self,
        data: schemas.ArtifactCreate,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> schemas.ArtifactUpload:
        """Declare an artifact (name, size, SHA-256) and get where to PUT its bytes; then call
        `complete`. A name that exists or is being uploaded is a 409."""
        creator = Creator(actor=principal.actor, owner_id=principal.user_id)
        return await _service(db, state, settings).create(data, creator)

    @get("/", operation_id="list_artifacts")
    async def list_artifacts(
        self,
        request: Request[Any, Any, Any],
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
        q: Annotated[str | None, Parameter(max_length=200, description="name contains")] = None,
        prefix: Annotated[
            str | None, Parameter(max_length=512, description="name starts with")
        ] = None,
        delimiter: Annotated[
            str | None,
            Parameter(
                pattern="^/$",
                description="'/': browse folders: only names with no '/' after the prefix, and "
                "`folders` lists the next-level prefixes (first page only)",
            ),
        ] = None,
        state_filter: Annotated[
            str | None, Parameter(query="state", pattern="^(uploading|ready)$")
        ] = None,
        owner: Annotated[str | None, Parameter(description="'me' or a user id")] = None,
        task_id: uuid.UUID | None = None,
        limit: Annotated[int, Parameter(ge=1, le=500)] = 100,
        cursor: Annotated[str | None, Parameter(max_length=300)] = None,
    ) -> Response[schemas.ArtifactPage]:
        """Artifacts, newest first; filter by name (contains, or starts with a prefix), state,
        owner or producing task; with ``delimiter=/``, one folder level at a time (``ETag``)."""
        owner_id = owner_filter(owner, principal)
        return await cached_answer(
            request,
            principal,
            lambda: _service(db, state, settings).list(
                q=q,
                prefix=prefix,
                folders=delimiter is not None,
                state=state_filter,
                owner=owner_id,
                task_id=task_id,
                limit=limit,
                cursor=cursor,
            ),
        )

    @get("/by-name/{name:path}", operation_id="get_artifact_by_name")
    async def by_name(
        self, name: str, db: AsyncSession, settings: Settings, state: State
    ) -> schemas.Artifact:
        """One artifact by its exact name."""
        return await _service(db, state, settings).get(name.lstrip("/"))

    @get("/{artifact_id:uuid}", operation_id="get_artifact")
    async def get_artifact(
        self, artifact_id: uuid.UUID, db: AsyncSession, settings: Settings, state: State
    ) -> schemas.Artifact:
        """One artifact's metadata."""
        return await _service(db, state, settings).get(str(artifact_id))

    @get("/{artifact_id:uuid}/download", operation_id="artifact_download_url")
    async def download(
        self, artifact_id: uuid.UUID, db: AsyncSession, settings: Settings, state: State
    ) -> schemas.DownloadUrl:
        """A short-lived URL (``storage_url_ttl_s``) that serves the bytes, with HTTP Range."""
        return await _service(db, state, settings).download_url(str(artifact_id))

    @post("/{artifact_id:uuid}/upload", operation_id="resume_artifact_upload", status_code=200)
    async def resume(
        self,
        artifact_id: uuid.UUID,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> schemas.ArtifactUpload:
        """Fresh URLs for an unfinished upload, with the offset (local) or parts (S3) already
        held."""
        return await _service(db, state, settings).resume(
            str(artifact_id), may_write=owner_or_admin(principal)
        )

    @post("/{artifact_id:uuid}/complete", operation_id="complete_artifact_upload", status_code=200)
    async def complete(
        self,
        artifact_id: uuid.UUID,
        data: schemas.UploadComplete,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> schemas.Artifact:
        """Mark the upload done once the store holds every byte; the artifact becomes `ready`."""
        return await _service(db, state, settings).complete(
            artifact_id, data.parts, actor=principal.actor, may_write=owner_or_admin(principal)
        )

    @delete("/{artifact_id:uuid}", operation_id="delete_artifact", status_code=204)
    async def delete_artifact(
        self,
        artifact_id: uuid.UUID,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> None:
        """Delete the artifact and its object (its owner or an admin); an unfinished upload is
        aborted."""
        await _service(db, state, settings).delete(
            str(artifact_id), actor=principal.actor, may_write=owner_or_admin(principal)
        )
