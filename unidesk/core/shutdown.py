"""A server stop that ends: on SIGTERM, close live streams and agent sockets first, then stop.

uvicorn on its own waits for every open connection to finish before the app's shutdown runs,
and a browser's event stream (``/api/events/stream``) never finishes, so a server with one
open tab never stopped. ``DrainingServer`` runs ``drain`` as soon as the signal arrives:

1. the listening sockets close (new connections are refused by the kernel: agents told to go
   away redial elsewhere or later for free); new event/log streams on kept-alive connections
   are refused (503) and every open one gets a last ``shutdown`` message
   (``{"reason": "server shutting down"}``) and ends; agent WebSockets are closed with 1001
   ``server shutting down`` (agents reconnect with backoff) — at most ``DRAIN_S``;
2. uvicorn gives requests in flight ``GRACEFUL_S``, then cancels them;
3. the app's lifespan shutdown stops components, the event hub, the pool and the embedded
   PostgreSQL, each step bounded.

A watchdog ends the process (exit code 70, logged) if all of it has not finished within
``SHUTDOWN_BOUND_S`` of the signal.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

import structlog
import uvicorn
from litestar.datastructures import State

__all__ = [
    "DRAIN_S",
    "GRACEFUL_S",
    "SHUTDOWN_BOUND_S",
    "DrainingServer",
    "drain",
    "run",
]

log = structlog.get_logger("unidesk.shutdown")

DRAIN_S = 3.0
"""At most this long to close live streams and agent sockets."""
GRACEFUL_S = 5.0
"""Requests still in flight after the drain get this long to finish before they are cancelled."""
SHUTDOWN_BOUND_S = 30.0
"""From the signal to the end of the process, whatever hangs."""


async def drain(state: State) -> None:
    """End live streams and agent sockets now; refuse new streams from here on."""
    state.draining = True
    hub = getattr(state, "event_hub", None)
    if hub is not None:
        hub.close_subscribers()
    ingress = getattr(state, "ingress", None)
    if ingress is not None:
        await ingress.close_sockets()


def _hard_exit() -> None:
    log.error("shutdown did not finish in time; exiting", bound_s=SHUTDOWN_BOUND_S)
    os._exit(70)


class DrainingServer(uvicorn.Server):
    """uvicorn's server with ``drain`` before its own shutdown, and the overall watchdog."""

    def __init__(self, config: uvicorn.Config, state: State) -> None:
        super().__init__(config)
        self._state = state

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        watchdog = threading.Timer(SHUTDOWN_BOUND_S, _hard_exit)
        watchdog.daemon = True
        watchdog.start()
        log.info("shutting down", bound_s=SHUTDOWN_BOUND_S)
        # stop listening first: every agent closed below redials at once, and a refused TCP
        # connect costs nothing here while a 503 from the draining app is a full request each
        # (10,000 of them kept a stopping server busy for 10 s)
        for server in self.servers:
            server.close()
        try:
            await asyncio.wait_for(drain(self._state), DRAIN_S)
        except Exception as exc:  # a stuck socket must not keep the rest from stopping
            log.warning("drain did not finish", error=repr(exc))
        await super().shutdown(sockets)


def run(app: Any, *, sockets: list[socket.socket] | None = None, **config: Any) -> None:
    """Serve ``app`` until SIGTERM/SIGINT, then stop as described above. ``sockets``: already
    bound listening sockets (the workers of ``serve --workers`` share one)."""
    server = DrainingServer(
        uvicorn.Config(app, timeout_graceful_shutdown=int(GRACEFUL_S), **config), app.state
    )
    server.run(sockets=sockets)
