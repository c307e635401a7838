"""Hellos that arrive together are registered in one transaction; a hello whose registration
fails is tried alone and refused, and the others in its batch still register."""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import select

from tests.integration.raw_agent import hello
from unidesk.core.auth.models import NodeToken
from unidesk.core.auth.services import NodeTokenService
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.events.models import Event
from unidesk.core.ingress.connections import ConnectionTable
from unidesk.core.ingress.delivery import Delivery
from unidesk.core.ingress.registrar import MIN_RATE, RETRY_AFTER_MAX_S, Registrar
from unidesk.core.nodes.models import NodeRow
from unidesk.errors import Unauthenticated


@pytest.fixture
async def sessions(database_url: str) -> AsyncIterator[object]:
    engine = make_engine(database_url, pool_size=2)
    yield make_sessionmaker(engine)
    await engine.dispose()


async def _tokens(sessions, n: int, secrets: list[str] | None = None) -> list[NodeToken]:  # type: ignore[no-untyped-def]
    ids = []
    for i in range(n):
        async with sessions() as s:
            created = await NodeTokenService(s).create(f"t{i}", actor="test", created_by=None)
            ids.append(created.token.id)
            if secrets is not None:
                secrets.append(created.secret)
    async with sessions() as s:
        rows = (await s.scalars(select(NodeToken).where(NodeToken.id.in_(ids)))).all()
        return sorted(rows, key=lambda t: ids.index(t.id))


async def _queued(registrar: Registrar, calls) -> list[asyncio.Task]:  # type: ignore[no-untyped-def]
    """Start the registrations, let each queue its hello, then start the writer: one batch."""
    tasks = [asyncio.create_task(registrar.register(t, h, connection_id=c)) for t, h, c in calls]
    for _ in range(3):
        await asyncio.sleep(0)
    await registrar.start()
    await asyncio.wait(tasks, timeout=30)
    return tasks


async def test_hellos_queued_together_register_in_one_transaction(sessions) -> None:  # type: ignore[no-untyped-def]
    tokens = await _tokens(sessions, 5)
    registrar = Registrar(
        sessions, Delivery(sessions, ConnectionTable("i"), ack_timeout_s=5.0), instance_id="inst"
    )
    try:
        tasks = await _queued(
            registrar, [(t, hello(f"n{i}"), f"conn-{i}") for i, t in enumerate(tokens)]
        )
    finally:
        await registrar.stop()
    regs = [t.result() for t in tasks]
    assert registrar.batches == 1
    assert sorted(r.node_name for r in regs) == [f"n{i}" for i in range(5)]
    async with sessions() as s:
        nodes = (await s.execute(select(NodeRow.name, NodeRow.connection_id, NodeRow.state))).all()
        assert sorted(nodes) == [(f"n{i}", f"conn-{i}", "online") for i in range(5)]
        rows = (
            await s.execute(
                select(Event.kind, Event.txid).where(
                    Event.kind.in_(("node.registered", "node.connected"))
                )
            )
        ).all()
    assert sorted(k for k, _ in rows) == ["node.connected"] * 5 + ["node.registered"] * 5
    assert len({txid for _, txid in rows}) == 1  # one transaction for the batch


async def test_a_failing_hello_is_refused_alone_and_the_rest_register(sessions) -> None:  # type: ignore[no-untyped-def]
    tokens = await _tokens(sessions, 4)
    registrar = Registrar(
        sessions, Delivery(sessions, ConnectionTable("i"), ack_timeout_s=5.0), instance_id="inst"
    )
    calls = [(t, hello(f"n{i}"), f"conn-{i}") for i, t in enumerate(tokens)]
    calls[2] = (tokens[2], hello("bad", hostname="bad\x00host"), "conn-bad")  # PostgreSQL refuses
    try:
        tasks = await _queued(registrar, calls)
    finally:
        await registrar.stop()
    assert tasks[2].exception() is not None
    assert sorted(tasks[i].result().node_name for i in (0, 1, 3)) == ["n0", "n1", "n3"]
    async with sessions() as s:
        names = sorted((await s.scalars(select(NodeRow.name))).all())
        kinds = (await s.scalars(select(Event.kind).where(Event.kind == "node.connected"))).all()
    assert names == ["n0", "n1", "n3"]
    assert len(kinds) == 3  # nothing of the failed batch attempt was kept


async def test_handshakes_waiting_together_resolve_their_tokens_in_one_read(sessions) -> None:  # type: ignore[no-untyped-def]
    secrets: list[str] = []
    tokens = await _tokens(sessions, 2, secrets)
    async with sessions() as s:
        await NodeTokenService(s).revoke(tokens[1].id, actor="test")
    registrar = Registrar(
        sessions, Delivery(sessions, ConnectionTable("i"), ack_timeout_s=5.0), instance_id="inst"
    )
    presented = [secrets[0], secrets[1], "udn_not-a-token", secrets[0]]
    waits = [asyncio.create_task(registrar.resolve(p)) for p in presented]
    for _ in range(3):
        await asyncio.sleep(0)
    await registrar.start()
    try:
        await asyncio.wait(waits, timeout=30)
    finally:
        await registrar.stop()
    assert waits[0].result().id == tokens[0].id
    assert waits[3].result().id == tokens[0].id
    assert isinstance(waits[1].exception(), Unauthenticated)
    assert waits[1].exception().detail == "node token revoked"
    assert isinstance(waits[2].exception(), Unauthenticated)
    assert waits[2].exception().detail == "invalid node token"


async def test_new_nodes_wanting_a_taken_name_get_distinct_names(sessions) -> None:  # type: ignore[no-untyped-def]
    """Names of a batch's new nodes are checked in one read, and against each other: a name
    already taken, or taken by an earlier hello of the same batch, gets a suffix."""
    tokens = await _tokens(sessions, 4)
    registrar = Registrar(
        sessions, Delivery(sessions, ConnectionTable("i"), ack_timeout_s=5.0), instance_id="inst"
    )
    try:
        first = await _queued(registrar, [(tokens[0], hello("gpu"), "conn-0")])
        assert first[0].result().node_name == "gpu"
        batch = [
            asyncio.create_task(registrar.register(t, hello("gpu"), connection_id=f"conn-{i}"))
            for i, t in enumerate(tokens[1:], start=1)
        ]
        await asyncio.wait(batch, timeout=30)
    finally:
        await registrar.stop()
    names = [t.result().node_name for t in batch]
    assert len(set(names) | {"gpu"}) == 4
    assert all(n.startswith("gpu-") and len(n) == len("gpu-") + 6 for n in names)
    async with sessions() as s:
        stored = (await s.scalars(select(NodeRow.name))).all()
    assert sorted(stored) == sorted(["gpu", *names])


async def test_refused_agents_get_retry_after_slots_spread_at_the_registration_rate(
    sessions,
) -> None:  # type: ignore[no-untyped-def]
    """Each refused agent is told to come back in its own slot after the waiting backlog, one
    per 1/rate s: a fleet refused together returns at the pace the server registers."""
    registrar = Registrar(
        sessions, Delivery(sessions, ConnectionTable("i"), ack_timeout_s=5.0), instance_id="inst"
    )
    registrar.waiting = 1000  # no registration measured yet: the floor rate, MIN_RATE
    hints = [registrar.retry_after_s(rand=lambda: 0.0) for _ in range(2000)]
    assert hints == sorted(hints)
    first, last = 1000 / MIN_RATE, (1000 + 1999) / MIN_RATE  # after the backlog, 1/rate apart
    assert math.ceil(first) <= hints[0] <= math.ceil(first) + 1
    assert math.ceil(last) <= hints[-1] <= math.ceil(last) + 1
    assert len(set(hints)) > 5
    many = [registrar.retry_after_s(rand=lambda: 0.0) for _ in range(10_000)]
    assert max(many) == RETRY_AFTER_MAX_S  # bounded however many are refused
