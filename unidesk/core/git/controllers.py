"""HTTP handler: resolve a branch or tag of a repository to its commit (for the submit form)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar import Controller, post
from litestar.datastructures import State
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.schemas import Principal
from unidesk.core.git.resolve import RefResolved, resolve_ref
from unidesk.core.secrets.services import SecretService
from unidesk.core.settings import Settings

__all__ = ["GitController", "ResolveRequest"]


class ResolveRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    repo_url: Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]
    ref: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
    """A branch or tag name, HEAD, a full ``refs/…`` name, or a full commit id."""
    credential: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    """A secret reference (as in a task's ``credentials.code_repo``) for a private https
    repository: ``user:token`` or a bare token."""


class GitController(Controller):
    path = "/api/git"
    tags = ("git",)

    @post("/resolve", operation_id="resolve_git_ref", status_code=200)
    async def resolve(
        self,
        data: ResolveRequest,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> RefResolved:
        """The full commit id a branch or tag names now (one ``git ls-remote`` from the server,
        public hosts only unless ``git_resolve_private_hosts``): submit that id, the task stays
        pinned to it. 404: no such branch or tag; 422: the repository could not be read;
        429: the caller used ``git_resolve_per_user`` resolves in ``git_resolve_window_s``."""
        state.git_resolve_limiter.take(str(principal.user_id))
        credential = None
        if data.credential:
            svc = SecretService.of(db, state)
            ref = await svc.resolve_ref(data.credential, principal, "credential")
            credential = (await svc.values([ref["id"]])).get(ref["id"])
        return await resolve_ref(
            data.repo_url,
            data.ref,
            allow_file=settings.allow_file_urls,
            allow_private=settings.git_resolve_private_hosts,
            timeout_s=settings.git_resolve_timeout_s,
            credential=credential,
        )
