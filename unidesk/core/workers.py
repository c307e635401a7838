"""``unidesk-server serve --workers N``: N server processes on one listening socket, one database.

Server instances share nothing but the database (claims use SKIP LOCKED, deliveries reach the
process holding a node's socket through NOTIFY), so N processes on one machine use N cores.
This supervisor does what must happen once per machine before them: it starts the embedded
PostgreSQL (when no URL is set) and migrates, binds the port, then forks the workers, which
accept on the shared socket. Jobs that must run once run in worker 0 only: the local agent
(one compute node per machine) and the backup schedule (also guarded by an advisory lock
across replicas). A worker that dies takes the whole server down (exit status 1) rather than
leaving a machine that silently lost its local node or schedule; the process manager restarts it.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
from typing import Any

import msgspec
import structlog

from unidesk.core.db.readcache import WriteCounter
from unidesk.core.settings import Settings
from unidesk.core.storage.rawbody import UploadHttpProtocol

__all__ = ["UVICORN_OPTIONS", "listen_socket", "serve_workers", "worker_settings"]

log = structlog.get_logger("unidesk.workers")

UVICORN_OPTIONS: dict[str, Any] = {
    "log_config": None,
    "access_log": False,
    "ws_max_size": 4 * 1024 * 1024 + 1024,
    "ws_per_message_deflate": False,  # deflate costs ~44 KiB per agent socket
    "http": UploadHttpProtocol,  # httptools, with signed-file PUT bodies read off the socket
}
STOP_TIMEOUT_S = 40.0
"""Longer than a worker's own bound (``shutdown.SHUTDOWN_BOUND_S``) before it is killed."""


def worker_settings(settings: Settings, index: int) -> Settings:
    """Worker 0 keeps the once-per-machine jobs; the others run without them."""
    if index == 0:
        return settings
    return msgspec.structs.replace(settings, local_agent=False, backup_daily_at="")


def _run_worker(settings: Settings, sock: socket.socket, index: int, counter: WriteCounter) -> None:
    from unidesk.core import shutdown
    from unidesk.core.app import create_app

    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    structlog.contextvars.bind_contextvars(worker=index)
    app = create_app(
        worker_settings(settings, index), migrate=False, write_counter=counter.attach(index)
    )
    shutdown.run(app, sockets=[sock], **UVICORN_OPTIONS)


def listen_socket(host: str, port: int) -> socket.socket:
    """The workers' shared listening socket, made with ``IPPROTO_TCP`` as its protocol.

    asyncio sets ``TCP_NODELAY`` only on accepted sockets whose ``proto`` is ``IPPROTO_TCP``;
    ``socket.create_server`` leaves it 0, and each response (head and body written apart) then
    waited for the client's delayed ACK: ~40 ms a request on a kept-alive connection."""
    family, kind, proto, _, addr = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(2048)
    except OSError:
        sock.close()
        raise
    return sock


def _plugin_dirs(settings: Settings) -> list[Any]:
    from unidesk.core.plugins.facade import Plugins
    from unidesk.core.plugins.manager import make_plugin_manager, parse_selection

    return Plugins(
        make_plugin_manager(settings.plugins), enabled=parse_selection(settings.plugins) != set()
    ).migration_dirs()


def serve_workers(settings: Settings, workers: int) -> int:
    """Start the database once, then ``workers`` server processes; returns the exit status."""
    from unidesk.core.db.bootstrap import open_database

    handle = asyncio.run(open_database(settings, plugin_dirs=_plugin_dirs(settings)))
    stopping = False

    def stop(signum: int, _frame: Any) -> None:
        nonlocal stopping
        stopping = True

    try:
        shared = msgspec.structs.replace(settings, database_url=handle.url)
        sock = listen_socket(settings.host, settings.port)
        sock.set_inheritable(True)
        ctx = multiprocessing.get_context("fork")
        counter = WriteCounter(workers)  # shared memory, made before the fork
        procs = []
        for i in range(workers):
            p = ctx.Process(
                target=_run_worker, args=(shared, sock, i, counter), name=f"unidesk-worker-{i}"
            )
            p.start()
            procs.append(p)
        log.info("workers started", workers=workers, pids=[p.pid for p in procs])
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        status = 0
        while not stopping:
            multiprocessing.connection.wait([p.sentinel for p in procs], timeout=0.5)
            dead = [p for p in procs if p.exitcode is not None]
            if dead and not stopping:
                log.error(
                    "a worker exited; stopping the server",
                    worker=dead[0].name,
                    exitcode=dead[0].exitcode,
                )
                status = 1
                break
        for p in procs:
            if p.exitcode is None and p.pid is not None:
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(STOP_TIMEOUT_S)
            if p.exitcode is None:
                log.warning("worker did not stop in time; killed", worker=p.name)
                p.kill()
                p.join(5)
        sock.close()
        return status
    finally:
        handle.close()
        sys.stderr.flush()
