"""HTTP handlers for ``/api/secrets``: set, delete, list. No route ever returns a value."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, put
from litestar.datastructures import State
from litestar.openapi.datastructures import ResponseSpec
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.schemas import Principal
from unidesk.core.db.readcache import cached_answer
from unidesk.core.secrets import schemas
from unidesk.core.secrets.services import SecretService

__all__ = ["SecretController"]


def _reply(secret: schemas.Secret, created: bool) -> Response[schemas.Secret]:
    return Response(secret, status_code=201 if created else 200)


CREATED = {201: ResponseSpec(data_container=schemas.Secret, description="Created (a new secret)")}
"""A put answers 201 when it creates the secret and 200 when it replaces its value."""


class SecretController(Controller):
    path = "/api/secrets"
    tags = ("secrets",)

    @get("/", operation_id="list_secrets")
    async def list_secrets(
        self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal, state: State
    ) -> Response[schemas.SecretList]:
        """Secrets you may use or manage: names, who changed them and when (never values)."""

        async def page() -> schemas.SecretList:
            return schemas.SecretList(items=await SecretService.of(db, state).list(principal))

        return await cached_answer(request, principal, page)

    @put("/user/{name:str}", operation_id="put_user_secret", responses=CREATED)
    async def put_user(
        self,
        name: str,
        data: schemas.SecretPut,
        db: AsyncSession,
        principal: Principal,
        state: State,
    ) -> Response[schemas.Secret]:
        """Create or replace one of your own secrets (201 created, 200 replaced)."""
        return _reply(*await SecretService.of(db, state).put("user", name, data.value, principal))

    @put("/global/{name:str}", operation_id="put_global_secret", responses=CREATED)
    async def put_global(
        self,
        name: str,
        data: schemas.SecretPut,
        db: AsyncSession,
        principal: Principal,
        state: State,
    ) -> Response[schemas.Secret]:
        """Create or replace a global secret (admins only); any task may use it."""
        return _reply(*await SecretService.of(db, state).put("global", name, data.value, principal))

    @put("/project/{project:str}/{name:str}", operation_id="put_project_secret", responses=CREATED)
    async def put_project(
        self,
        project: str,
        name: str,
        data: schemas.SecretPut,
        db: AsyncSession,
        principal: Principal,
        state: State,
    ) -> Response[schemas.Secret]:
        """Create or replace a project's secret (its members or an admin) for its members' tasks."""
        return _reply(
            *await SecretService.of(db, state).put(
                "project", name, data.value, principal, project=project
            )
        )

    @delete("/user/{name:str}", operation_id="delete_user_secret")
    async def delete_user(
        self, name: str, db: AsyncSession, principal: Principal, state: State
    ) -> None:
        """Delete one of your own secrets."""
        await SecretService.of(db, state).delete(principal, scope="user", name=name)

    @delete("/global/{name:str}", operation_id="delete_global_secret")
    async def delete_global(
        self, name: str, db: AsyncSession, principal: Principal, state: State
    ) -> None:
        """Delete a global secret (admins only)."""
        await SecretService.of(db, state).delete(principal, scope="global", name=name)

    @delete("/project/{project:str}/{name:str}", operation_id="delete_project_secret")
    async def delete_project(
        self, project: str, name: str, db: AsyncSession, principal: Principal, state: State
    ) -> None:
        """Delete a project's secret (its members or an admin)."""
        await SecretService.of(db, state).delete(
            principal, scope="project", name=name, project=project
        )

    @delete("/{secret_id:uuid}", operation_id="delete_secret")
    async def delete_by_id(
        self, secret_id: uuid.UUID, db: AsyncSession, principal: Principal, state: State
    ) -> None:
        """Delete a secret by id (an admin may delete any user's)."""
        await SecretService.of(db, state).delete(principal, secret_id=secret_id)
