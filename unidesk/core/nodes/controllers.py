"""HTTP handlers for nodes: list, get, drain, undrain, clear caches, delete."""

from __future__ import annotations

import uuid
from typing import Any

from litestar import Controller, Request, Response, delete, get, post
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.guards import admin_only
from unidesk.core.auth.policy import allowed_actions
from unidesk.core.auth.schemas import Principal
from unidesk.core.db.readcache import cached_answer
from unidesk.core.nodes import schemas
from unidesk.core.nodes.services import NodeService

__all__ = ["NodeController"]


def _for(principal: Principal, node: schemas.Node) -> schemas.Node:
    node.allowed_actions = allowed_actions(principal, "node")
    return node


class NodeController(Controller):
    path = "/api/nodes"
    tags = ("nodes",)

    @get("/", operation_id="list_nodes")
    async def list_nodes(
        self, request: Request[Any, Any, Any], db: AsyncSession, principal: Principal
    ) -> Response[dict[str, list[schemas.Node]]]:
        """Every known node with state, resources, usage and running attempts (``ETag``)."""

        async def page() -> dict[str, list[schemas.Node]]:
            return {"items": [_for(principal, n) for n in await NodeService(db).list()]}

        return await cached_answer(request, principal, page)

    @get("/{node_id:uuid}", operation_id="get_node")
    async def get_node(
        self, node_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> schemas.Node:
        """One node; ``allowed_actions`` says what the caller may do to it."""
        return _for(principal, await NodeService(db).get(node_id))

    @post("/{node_id:uuid}/drain", operation_id="drain_node", status_code=200, guards=[admin_only])
    async def drain(
        self, node_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> schemas.Node:
        """Stop scheduling new work on a node; running attempts finish."""
        node = await NodeService(db).set_draining(node_id, True, actor=principal.actor)
        return _for(principal, node)

    @post(
        "/{node_id:uuid}/undrain", operation_id="undrain_node", status_code=200, guards=[admin_only]
    )
    async def undrain(
        self, node_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> schemas.Node:
        """Let the scheduler use the node again."""
        node = await NodeService(db).set_draining(node_id, False, actor=principal.actor)
        return _for(principal, node)

    @post(
        "/{node_id:uuid}/clear-caches",
        operation_id="clear_node_caches",
        status_code=202,
        guards=[admin_only],
    )
    async def clear_caches(
        self, node_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> schemas.CacheClearRequest:
        """Ask an online node to empty its git, input and env image caches (entries a running
        attempt uses stay); its next heartbeat reports the new sizes."""
        request_id = await NodeService(db).clear_caches(node_id, actor=principal.actor)
        return schemas.CacheClearRequest(node_id=node_id, request_id=request_id)

    @delete("/{node_id:uuid}", operation_id="delete_node", guards=[admin_only])
    async def delete_node(self, node_id: uuid.UUID, db: AsyncSession, principal: Principal) -> None:
        """Forget an offline node with no active work."""
        await NodeService(db).delete(node_id, actor=principal.actor)
