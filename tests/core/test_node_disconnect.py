"""A node's socket that ends is recorded as ``node.disconnected``, also when the offline sweep
got there first (a silent socket times out at about the moment its node does); a socket
replaced by a newer connection is not."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update

from tests.core.sched_helpers import SimCluster
from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.events.models import Event
from unidesk.core.ingress.connections import ConnectionTable
from unidesk.core.ingress.handler import _mark_disconnected
from unidesk.core.ingress.liveness import Liveness
from unidesk.core.nodes.models import NodeRow


@pytest.fixture
async def sim(database_url: str) -> AsyncIterator[SimCluster]:
    engine = make_engine(database_url, pool_size=2)
    yield SimCluster(make_sessionmaker(engine))
    await engine.dispose()


async def node_kinds(sim: SimCluster, node_id: uuid.UUID) -> list[str]:
    async with sim.sessions() as s:
        rows = await s.scalars(
            select(Event.kind).where(Event.subject_id == str(node_id)).order_by(Event.id)
        )
        return list(rows.all())


async def silent_since_an_hour(sim: SimCluster, node_id: uuid.UUID) -> None:
    async with sim.sessions() as s:
        await s.execute(
            update(NodeRow)
            .where(NodeRow.id == node_id)
            .values(last_heartbeat_at=datetime.now(UTC) - timedelta(hours=1))
        )
        await s.commit()


def connection(node_id: uuid.UUID, connection_id: str) -> SimpleNamespace:
    return SimpleNamespace(node_id=node_id, connection_id=connection_id, node_name="n")


async def test_socket_ending_after_the_offline_sweep_is_recorded(sim: SimCluster) -> None:
    [node] = await sim.nodes(1)
    await silent_since_an_hour(sim, node)
    liveness = Liveness(
        sim.sessions, ConnectionTable("i"), heartbeat_interval_s=0.5, offline_timeout_s=3.0
    )
    assert len(await liveness.sweep()) == 1  # offline, its connection cleared
    await _mark_disconnected(
        SimpleNamespace(sessions=sim.sessions), connection(node, f"sim-{node}")
    )
    assert (await node_kinds(sim, node))[-2:] == ["node.offline", "node.disconnected"]
    async with sim.sessions() as s:
        row = await s.get(NodeRow, node)
        assert row is not None and (row.state, row.connection_id) == ("offline", None)


async def test_socket_replaced_by_a_newer_connection_is_not_recorded(sim: SimCluster) -> None:
    [node] = await sim.nodes(1)  # its current connection is sim-<id>
    await _mark_disconnected(SimpleNamespace(sessions=sim.sessions), connection(node, "older"))
    assert "node.disconnected" not in await node_kinds(sim, node)
    async with sim.sessions() as s:
        row = await s.get(NodeRow, node)
        assert row is not None and row.connection_id == f"sim-{node}"
