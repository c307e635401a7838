"""Delivery's sent marks: a redelivery pass keeps the marks of dispatches too fresh to read."""

from __future__ import annotations

import time
import uuid
from typing import Any

from unidesk.core.db.engine import make_engine, make_sessionmaker
from unidesk.core.ingress.connections import ConnectionTable, NodeConnection
from unidesk.core.ingress.delivery import Delivery


class _Socket:
    """Stands in for the node's WebSocket: records nothing is sent (no rows to send)."""

    async def send_data(self, data: Any, mode: str = "binary") -> None:
        raise AssertionError("nothing should be sent")


async def test_a_redelivery_pass_keeps_marks_of_fresh_dispatches_and_forgets_old_ones(
    database_url: str,
) -> None:
    engine = make_engine(database_url, 2)
    try:
        delivery = Delivery(make_sessionmaker(engine), ConnectionTable("i1"), ack_timeout_s=10)
        node_id = uuid.uuid4()
        conn = NodeConnection(
            _Socket(),  # type: ignore[arg-type]
            node_id=node_id,
            node_name="n1",
            token_id=uuid.uuid4(),
            connection_id="c1",
        )
        now = time.monotonic()
        conn.sent_dispatch = {("fresh", 1): now - 1.0, ("old", 1): now - 3600.0}
        conn.acked = {("fresh-ack", 1): now - 1.0, ("old-ack", 1): now - 3600.0}
        # The database holds no assignment; a redelivery pass reads only those older than
        # the ack timeout, so the fresh one (sent a second ago) is simply not read yet.
        await delivery.deliver_many({node_id: conn}, resend_after=10)
        assert set(conn.sent_dispatch) == {("fresh", 1)}
        assert set(conn.acked) == {("fresh-ack", 1)}
        # A full read (registration) reads every assignment: what it did not find is answered.
        await delivery.deliver_many({node_id: conn})
        assert conn.sent_dispatch == {} and conn.acked == {}
    finally:
        await engine.dispose()
