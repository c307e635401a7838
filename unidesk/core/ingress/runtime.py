"""Wires the ingress parts for one server instance: sockets, reports, liveness, delivery, and
heartbeat reconciliation."""

from __future__ import annotations

import asyncio
import uuid

import structlog
from litestar.datastructures import State

from unidesk import protocol
from unidesk.core.ingress.connections import ConnectionTable
from unidesk.core.ingress.delivery import Delivery
from unidesk.core.ingress.disconnects import record_disconnects
from unidesk.core.ingress.handler import install_refusal_log_filter
from unidesk.core.ingress.liveness import Liveness
from unidesk.core.ingress.reconcile import HeartbeatReconciler
from unidesk.core.ingress.registrar import Registrar
from unidesk.core.ingress.reports import ReportWriter

__all__ = ["IngressRuntime"]

log = structlog.get_logger("unidesk.ingress")


class IngressRuntime:
    """Started with the app; ``state.ingress`` is this object."""

    name = "ingress"

    def __init__(self, state: State) -> None:
        settings = state.settings
        self.instance_id = uuid.uuid4().hex[:16]
        self.connections = ConnectionTable(self.instance_id)
        self.reports = ReportWriter(
            state.sessions,
            log_cap=settings.max_log_bytes_per_attempt,
            plugins=state.plugins,
            masks=getattr(state, "secret_masks", None),
        )
        self.liveness = Liveness(
            state.sessions,
            self.connections,
            heartbeat_interval_s=settings.heartbeat_interval_s,
            offline_timeout_s=settings.offline_timeout_s,
        )
        self.delivery = Delivery(
            state.sessions, self.connections, ack_timeout_s=settings.dispatch_ack_timeout_s
        )
        self.registrar = Registrar(
            state.sessions,
            self.delivery,
            instance_id=self.instance_id,
            on_registered=lambda: state.scheduler_wake(),
        )
        self.reconciler = HeartbeatReconciler(
            state.sessions, interval_s=settings.heartbeat_interval_s
        )
        self.health_reasons: dict[uuid.UUID, str | None] = {}
        install_refusal_log_filter()
        self.stopping = False
        """Set when the sockets are closed for a stop: disconnects are recorded in bulk."""
        self._sessions = state.sessions
        state.event_hub.add_listener("delivery", self.delivery.on_events)

    async def start(self) -> None:
        for part in (self.reports, self.liveness, self.delivery, self.registrar, self.reconciler):
            await part.start()

    async def close_sockets(self) -> None:
        """Record the disconnects of every agent socket in one transaction, then close them
        with 1001 and a reason (agents redial on their restart bound): a socket handler ending
        while the server stops leaves its record to this (one transaction each made a stop
        with 10,000 nodes outlast its bound, and the cancelled handlers' records were lost)."""
        self.stopping = True
        conns = list(self.connections)
        try:  # first: closing 10,000 sockets may outlast the drain's bound under load
            await record_disconnects(self._sessions, conns)
        except Exception:
            log.exception("could not record the disconnects of a stop", nodes=len(conns))
        await asyncio.gather(
            *(conn.close(protocol.CLOSE_SERVER_SHUTDOWN, "server shutting down") for conn in conns)
        )

    async def stop(self) -> None:
        await self.close_sockets()
        for part in (self.reconciler, self.registrar, self.delivery, self.liveness, self.reports):
            await part.stop()
