"""A node says hello: record who it is and what it has, then reconcile the attempts it reports."""

from __future__ import annotations

import uuid
from typing import Any

import msgspec
from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk import protocol
from unidesk.core.auth.models import NodeToken
from unidesk.core.events.writer import append
from unidesk.core.nodes.models import NodeRow
from unidesk.core.nodes.services import node_event
from unidesk.core.tasks.models import ATTEMPT_ACTIVE_STATES, AttemptRow
from unidesk.core.tasks.policy import apply_attempt_end
from unidesk.core.tasks.transitions import move_attempt, task_event

__all__ = ["Registration", "lose_attempt", "register_node"]


class Registration(msgspec.Struct, kw_only=True):
    node_id: uuid.UUID
    node_name: str
    replaced_connection: str | None
    reconcile: protocol.Reconcile


def _resources(hello: protocol.Hello) -> dict[str, Any]:
    return {
        "hostname": hello.hostname[:255],
        "os": hello.os[:32],
        "agent_version": hello.agent_version[:32],
        "protocol_version": hello.protocol_version,
        "cpus": hello.cpus,
        "memory_mb": hello.memory_mb,
        "gpus": [msgspec.to_builtins(g) for g in hello.gpus],
        "labels": dict(hello.labels),
        "runtimes": list(hello.runtimes),
        "host_mounts": {m.name: "ro" if m.read_only else "rw" for m in hello.host_mounts},
        "unhealthy_reason": hello.unhealthy_reason,
    }


async def _unique_name(session: AsyncSession, wanted: str) -> str:
    name = (wanted or "node")[:100]
    taken = await session.scalar(
        select(func.count()).select_from(NodeRow).where(NodeRow.name == name)
    )
    return name if not taken else f"{name}-{uuid.uuid4().hex[:6]}"


async def lose_attempt(session: AsyncSession, attempt: AttemptRow, *, why: str, actor: str) -> None:
    """Mark an active attempt lost (a fact) and let the policy decide the task's fate."""
    moved = await move_attempt(
        session,
        attempt.task_id,
        attempt.attempt_no,
        from_states=ATTEMPT_ACTIVE_STATES,
        to="lost",
        reason="node_lost",
        message=why,
        event=task_event(
            attempt.task_id,
            "task.attempt_lost",
            actor,
            attempt_no=attempt.attempt_no,
            node_id=str(attempt.node_id),
            why=why,
        ),
    )
    if moved:
        await apply_attempt_end(
            session,
            attempt.task_id,
            attempt.attempt_no,
            reason="node_lost",
            message=why,
            actor=actor,
        )


async def register_node(
    session: AsyncSession,
    token: NodeToken,
    hello: protocol.Hello,
    *,
    instance_id: str,
    connection_id: str,
) -> Registration:
    """Upsert the node for ``token`` as online on this instance and reconcile its attempts."""
    node = await session.scalar(
        select(NodeRow).where(NodeRow.token_id == token.id).with_for_update()
    )
    actor_name = hello.node_name[:100] or token.name
    replaced = None
    if node is None:
        node = NodeRow(
            id=uuid.uuid4(),
            name=await _unique_name(session, hello.node_name or token.name),
            token_id=token.id,
            state="online",
            **_resources(hello),
        )
        session.add(node)
        await session.flush()
        await append(
            session,
            node_event(node.id, "node.registered", f"node:{node.name}", **_resources(hello)),
        )
    else:
        replaced = node.connection_id
        for k, v in _resources(hello).items():
            setattr(node, k, v)
        if node.state != "online":
            node.state = "online"
            await append(session, node_event(node.id, "node.online", f"node:{node.name}"))
    node.instance_id = instance_id
    node.connection_id = connection_id
    node.connected_at = func.now()
    node.last_heartbeat_at = func.now()
    # ``token`` was loaded by another session (the handshake's): update the row, not the object
    await session.execute(
        update(NodeToken).where(NodeToken.id == token.id).values(last_used_at=func.now())
    )
    await append(
        session,
        node_event(
            node.id,
            "node.connected",
            f"node:{node.name}",
            connection_id=connection_id,
            instance_id=instance_id,
            replaced_connection=replaced,
            agent_version=hello.agent_version,
            reported_running=[[r.task_id, r.attempt_no] for r in hello.running],
        ),
    )
    reconcile = await _reconcile(session, node, hello.running, actor=f"node:{actor_name}")
    return Registration(
        node_id=node.id, node_name=node.name, replaced_connection=replaced, reconcile=reconcile
    )


async def _reconcile(
    session: AsyncSession, node: NodeRow, running: list[protocol.AttemptRef], *, actor: str
) -> protocol.Reconcile:
    """Keep what we still expect there; kill what we don't; lose what it no longer has."""
    expected = (
        await session.scalars(
            select(AttemptRow).where(
                AttemptRow.node_id == node.id, AttemptRow.state.in_(ATTEMPT_ACTIVE_STATES)
            )
        )
    ).all()
    reported = {(r.task_id, r.attempt_no) for r in running}
    keep, kill = [], []
    expected_keys = set()
    for a in expected:
        key = (str(a.task_id), a.attempt_no)
        expected_keys.add(key)
        if key in reported:
            keep.append(protocol.AttemptRef(task_id=key[0], attempt_no=key[1]))
        elif a.acked_at is not None:
            await lose_attempt(
                session, a, why="the node came back without this attempt", actor=actor
            )
        # an unacked dispatch is simply delivered again after Welcome
    for key in sorted(reported - expected_keys):
        kill.append(protocol.AttemptRef(task_id=key[0], attempt_no=key[1]))
    if kill:
        await append(
            session,
            node_event(
                node.id,
                "node.reconcile_kill",
                actor,
                attempts=[list(k) for k in sorted(reported - expected_keys)],
            ),
        )
    return protocol.Reconcile(keep=keep, kill=kill)
