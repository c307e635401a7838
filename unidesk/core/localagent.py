"""The main server is also a compute node: a supervised ``unidesk-agent`` child process.

It connects through the same WebSocket ingress with its own node token, exactly like a
remote node. The token lives in ``<data_dir>/local-agent/token`` (mode 0600) so the node
keeps its identity across restarts; a revoked or missing token is replaced by a new one.

The agent dies with the server: it is started with a parent-death signal (SIGKILL, Linux
``prctl(PR_SET_PDEATHSIG)``), so a ``kill -9`` of the server also ends the agent process but
not its containers, and the restarted server's local agent adopts them from the same state
directory exactly as any restarted agent does. A clean stop sends SIGTERM (the agent's own
graceful stop) and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import signal
import socket
import sys
from pathlib import Path

import structlog
from litestar.datastructures import State

from unidesk.backoff import backoff_delay
from unidesk.core.auth.services import LOCAL_AGENT_TOKEN_PREFIX, NodeTokenService
from unidesk.errors import Unauthenticated

__all__ = ["LocalAgent"]

log = structlog.get_logger("unidesk.localagent")
FINAL_EXIT_CODES = {
    75,
    76,
    77,
    78,
}  # replaced, incompatible, token refused, bad config (gateway_agent.connection)


_PR_SET_PDEATHSIG = 1


def _die_with_parent(parent: int) -> None:
    """In the forked child, before exec: SIGKILL when the server process goes away."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the server died before the signal was armed
        os._exit(1)


class LocalAgent:
    name = "local-agent"

    def __init__(self, state: State) -> None:
        self.state = state
        self.settings = state.settings
        self.dir = self.settings.data_path / "local-agent"
        self.proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self.error: str | None = "starting"
        self._stopping = False

    async def _token(self) -> Path:
        path = self.dir / "token"
        if path.exists():
            try:
                async with self.state.sessions() as s:
                    await NodeTokenService(s).resolve(path.read_text().strip())
                return path
            except Unauthenticated:
                log.info("local agent token no longer valid; issuing a new one")
        async with self.state.sessions() as s:
            created = await NodeTokenService(s).create(
                f"{LOCAL_AGENT_TOKEN_PREFIX}{socket.gethostname()}",
                actor="system:local-agent",
                created_by=None,
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(created.secret + "\n")
        return path

    def _env(self, token_file: Path) -> dict[str, str]:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "::", "") else self.settings.host
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNIDESK_")}
        env.update(
            {
                "UNIDESK_AGENT_SERVER_URL": f"http://{host}:{self.settings.port}",
                "UNIDESK_AGENT_TOKEN_FILE": str(token_file),
                "UNIDESK_AGENT_NODE_NAME": socket.gethostname(),
                "UNIDESK_AGENT_CACHE_DIR": str(self.dir / "cache"),
                "UNIDESK_AGENT_STATE_DIR": str(self.dir / "state"),
                "UNIDESK_AGENT_ALLOW_FILE_URLS": "true"
                if self.settings.allow_file_urls
                else "false",
                "UNIDESK_AGENT_RUNNER": self.settings.local_agent_runner,
                "UNIDESK_AGENT_NETWORK_MODE": self.settings.local_agent_network_mode,
                "UNIDESK_AGENT_LABELS": ",".join(
                    f"{k}={v}" for k, v in self.settings.local_agent_labels.items()
                ),
            }
        )
        if not self.settings.local_agent_labels:
            env.pop("UNIDESK_AGENT_LABELS")
        return env

    async def start(self) -> None:
        token_file = await self._token()
        self._task = asyncio.create_task(self._supervise(token_file), name="local-agent")

        async def check() -> str | None:
            return self.error

        self.state.health_checks.register("local_agent", check)

    async def _supervise(self, token_file: Path) -> None:
        failures = 0
        log_path = self.dir / "agent.log"
        while not self._stopping:
            # the child process writes to it; opening is one quick syscall
            with open(log_path, "ab") as out:  # noqa: ASYNC230
                self.proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "unidesk.gateway_agent.cli",
                    env=self._env(token_file),
                    stdout=out,
                    stderr=out,
                    start_new_session=True,
                    preexec_fn=functools.partial(_die_with_parent, os.getpid()),
                )
            self.error = None
            log.info("local agent started", pid=self.proc.pid, log=str(log_path))
            code = await self.proc.wait()
            if self._stopping:
                return
            self.error = f"local agent exited with code {code}; see {log_path}"
            log.warning("local agent exited", code=code)
            if code in FINAL_EXIT_CODES:
                return
            await asyncio.sleep(backoff_delay(failures, base_s=1.0, cap_s=60.0))
            failures += 1

    async def stop(self) -> None:
        self._stopping = True
        if self.proc and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 15)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
