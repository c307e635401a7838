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

__all__ = ["NodeHello", "Registration", "lose_attempt", "register_nodes"]


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


def _wanted_name(h: NodeHello) -> str:
    return (h.hello.node_name or h.token.name or "node")[:100]


def _unique_name(wanted: str, taken: set[str]) -> str:
    """``wanted``, or it with a random suffix when a node (or an earlier hello of the batch)
    has it; the name is added to ``taken``."""
    name = wanted if wanted not in taken else f"{wanted}-{uuid.uuid4().hex[:6]}"
    taken.add(name)
    return name


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


class NodeHello(msgspec.Struct, kw_only=True):
    """One hello to register: the node's token (resolved at the handshake), what it said, and
    the connection id its socket got."""

    token: NodeToken
    hello: protocol.Hello
    connection_id: str


async def register_nodes(
    session: AsyncSession, hellos: list[NodeHello], *, instance_id: str
) -> list[Registration]:
    """Upsert each hello's node as online on this instance and reconcile its attempts, for a
    batch of hellos with distinct tokens: the nodes are locked, the tokens' last use written and
    the active attempts read in one statement each for the whole batch."""
    if len({h.token.id for h in hellos}) != len(hellos):
        raise ValueError("one hello per token in a registration batch")
    token_ids = [h.token.id for h in hellos]
    nodes = {
        n.token_id: n
        for n in (
            await session.scalars(
                select(NodeRow)
                .where(NodeRow.token_id.in_(token_ids))
                .order_by(NodeRow.id)
                .with_for_update()
            )
        ).all()
    }
    # ``token`` was loaded by another session (the handshake's): update the rows, not the objects
    await session.execute(
        update(NodeToken).where(NodeToken.id.in_(token_ids)).values(last_used_at=func.now())
    )
    expected: dict[uuid.UUID, list[AttemptRow]] = {}
    if nodes:
        for a in (
            await session.scalars(
                select(AttemptRow)
                .where(
                    AttemptRow.node_id.in_([n.id for n in nodes.values()]),
                    AttemptRow.state.in_(ATTEMPT_ACTIVE_STATES),
                )
                .order_by(AttemptRow.task_id, AttemptRow.attempt_no)
            )
        ).all():
            expected.setdefault(a.node_id, []).append(a)  # type: ignore[arg-type]  # filtered on node_id
    taken: set[str] = set()
    wanted = [_wanted_name(h) for h in hellos if h.token.id not in nodes]
    if wanted:  # names of new nodes: one read for the batch
        taken.update(
            (await session.scalars(select(NodeRow.name).where(NodeRow.name.in_(wanted)))).all()
        )
    regs = []
    for h in hellos:
        node = nodes.get(h.token.id)
        regs.append(
            await _register(
                session,
                node,
                h,
                instance_id=instance_id,
                expected=expected.get(node.id, []) if node is not None else [],
                taken=taken,
            )
        )
    return regs


async def _register(
    session: AsyncSession,
    node: NodeRow | None,
    h: NodeHello,
    *,
    instance_id: str,
    expected: list[AttemptRow],
    taken: set[str],
) -> Registration:
    token, hello, connection_id = h.token, h.hello, h.connection_id
    actor_name = hello.node_name[:100] or token.name
    replaced = None
    if node is None:  # inserted with the batch's other new nodes at the next flush
        node = NodeRow(
            id=uuid.uuid4(),
            name=_unique_name(_wanted_name(h), taken),
            token_id=token.id,
            state="online",
            **_resources(hello),
        )
        session.add(node)
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
    reconcile = await _reconcile(
        session, node, hello.running, actor=f"node:{actor_name}", expected=expected
    )
    return Registration(
        node_id=node.id, node_name=node.name, replaced_connection=replaced, reconcile=reconcile
    )


async def _reconcile(
    session: AsyncSession,
    node: NodeRow,
    running: list[protocol.AttemptRef],
    *,
    actor: str,
    expected: list[AttemptRow],
) -> protocol.Reconcile:
    """Keep what we still expect there (``expected``: its active attempts); kill what we don't;
    lose what it no longer has."""
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
