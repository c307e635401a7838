"""The ``host.ssh`` runtime: bounded admin maintenance on the node's host OS / WSL distro over SSH.

Only two operations exist: ``probe`` (a fixed read-only script: OS, kernel, uptime, disk,
whether Docker and k3s are present) and ``exec`` (one command). Both run with a hard timeout
(the smaller of the request's and ``ssh_max_timeout_s``) and an output cap
(``ssh_output_cap_bytes``); past either the command is killed and the channel closed. The
host key must be in ``ssh_known_hosts``: an unknown or changed key is refused, never
accepted. Login is by public key only (no password, no SSH agent, no ~/.ssh/config). This
channel never runs ordinary tasks: the agent hands it only ``kind == "host.ssh"`` dispatches.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import time
from pathlib import Path
from typing import Any

import asyncssh

from unidesk.protocol import AttemptRef, Dispatch

from .config import AgentConfig, ConfigError
from .runner import Outcome, Reporter, StopReason

__all__ = ["MAINTENANCE_OPS", "PROBE_SCRIPT", "HostSshRunner", "check_ssh_config", "parse_probe"]

MAINTENANCE_OPS = ("probe", "exec")
_READ_CHUNK = 64 * 1024
PROBE_SCRIPT = r"""
echo "os=$( (. /etc/os-release 2>/dev/null && echo "$PRETTY_NAME") || uname -s)"
echo "kernel=$(uname -sr)"
echo "uptime_s=$(cut -d' ' -f1 /proc/uptime 2>/dev/null)"
df -Pk / 2>/dev/null \
  | awk 'NR==2 {print "disk_total_mb=" int($2/1024); print "disk_free_mb=" int($4/1024)}'
grep -qi microsoft /proc/version 2>/dev/null && echo wsl=yes || echo wsl=no
if command -v docker >/dev/null 2>&1; then echo docker=present; else echo docker=absent; fi
if [ -S /var/run/docker.sock ]; then echo docker_socket=present; else echo docker_socket=absent; fi
if command -v k3s >/dev/null 2>&1 || [ -x /usr/local/bin/k3s ]; then echo k3s=present
else echo k3s=absent; fi
echo "k3s_service=$(systemctl is-active k3s 2>/dev/null || echo unknown)"
"""


_PGID_MARKER = b"@@unidesk-hostssh-pgid "


def _wrap(command: str) -> str:
    """Run ``command`` with ``sh`` as the leader of a new session whose id it reports first on
    stderr, so the agent can kill everything it started (``setsid -w`` keeps the exit status)."""
    inner = f'echo "{_PGID_MARKER.decode()}$$" >&2; exec sh -c "$1"'
    return f"exec setsid -w sh -c {shlex.quote(inner)} unidesk-hostssh {shlex.quote(command)}"


def parse_probe(text: str) -> dict[str, str]:
    """``key=value`` lines of the probe script → a dict (later keys win; junk lines ignored)."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().isidentifier():
            out[key.strip()] = value.strip()
    return out


def check_ssh_config(config: AgentConfig) -> None:
    """Refuse a half-configured host.ssh at start: user, key and known_hosts are all required."""
    if not config.ssh_host:
        return
    missing = [n for n in ("ssh_user", "ssh_key_file", "ssh_known_hosts") if not getattr(config, n)]
    if missing:
        raise ConfigError(f"host.ssh needs {', '.join(missing)} when ssh_host is set")
    for name in ("ssh_key_file", "ssh_known_hosts"):
        path = Path(getattr(config, name)).expanduser()
        if not path.is_file():
            raise ConfigError(f"{name} {path} is not a readable file")


class _Capped:
    """Collects output up to ``cap`` bytes across both streams; forwards it to the reporter."""

    def __init__(self, reporter: Reporter, cap: int) -> None:
        self.reporter, self.cap, self.total = reporter, cap, 0
        self.stdout = bytearray()
        self.exceeded = False

    def feed(self, stream: str, data: bytes) -> None:
        room = self.cap - self.total
        if len(data) > room:
            data, self.exceeded = data[: max(0, room)], True
        self.total += len(data)
        if data:
            if stream == "stdout":
                self.stdout += data
            self.reporter.log(stream, data)  # type: ignore[arg-type]  # "stdout" or "stderr"


class HostSshRunner:
    """Runs host.ssh dispatches; one instance per agent, beside the Docker runner."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self._active: dict[AttemptRef, asyncio.Task[Outcome]] = {}
        self._stop_reasons: dict[AttemptRef, StopReason] = {}

    async def _connect(self) -> asyncssh.SSHClientConnection:
        c = self.config
        # expanduser is string work (HOME), not file I/O
        key_file = os.path.expanduser(c.ssh_key_file)  # noqa: ASYNC240
        known_hosts = os.path.expanduser(c.ssh_known_hosts)  # noqa: ASYNC240
        return await asyncssh.connect(
            c.ssh_host,
            port=c.ssh_port,
            username=c.ssh_user,
            client_keys=[key_file],
            known_hosts=known_hosts,
            password=None,
            agent_path=None,
            config=[],
            preferred_auth="publickey",
            connect_timeout=10,
            login_timeout=10,
            keepalive_interval=15,
        )

    async def run(self, dispatch: Dispatch, reporter: Reporter) -> Outcome:
        ref = AttemptRef(dispatch.task_id, dispatch.attempt_no)
        op = dispatch.params.get("op", "")
        if dispatch.kind != "host.ssh" or op not in MAINTENANCE_OPS:
            return Outcome(
                reason="infra_error",
                message=f"host.ssh runs only probe/exec maintenance, not {dispatch.kind}/{op!r}",
            )
        if op == "exec" and not dispatch.params.get("command", "").strip():
            return Outcome(reason="infra_error", message="exec without a command")
        if not self.config.ssh_host:
            return Outcome(
                reason="infra_error",
                message="host.ssh is not configured on this node (ssh_host is empty)",
            )
        timeout = min(
            float(dispatch.timeout_s),
            float(dispatch.params.get("timeout_s", dispatch.timeout_s)),
            self.config.ssh_max_timeout_s,
        )
        task = asyncio.create_task(
            self._operate(op, dispatch.params.get("command", ""), reporter, timeout)
        )
        self._active[ref] = task
        try:
            return await task
        except asyncio.CancelledError:
            reason = self._stop_reasons.get(ref)
            if reason is None:
                raise
            return Outcome(
                reason="cancelled" if reason == "cancelled" else "killed",
                message=f"stopped ({reason})",
            )
        finally:
            self._active.pop(ref, None)
            self._stop_reasons.pop(ref, None)

    async def _operate(
        self, op: str, command: str, reporter: Reporter, timeout_s: float
    ) -> Outcome:
        started = time.monotonic()
        await reporter.running()
        capped = _Capped(reporter, self.config.ssh_output_cap_bytes)
        try:
            async with asyncio.timeout(timeout_s):
                conn = await self._connect()
                async with conn:
                    code = await self._exec(
                        conn, PROBE_SCRIPT if op == "probe" else command, capped
                    )
        except TimeoutError:
            return Outcome(
                reason="timed_out",
                message=f"host.ssh {op} cut at its {timeout_s:g} s timeout; the command was killed",
            )
        except asyncssh.HostKeyNotVerifiable as exc:
            return Outcome(
                reason="infra_error",
                message=f"host key of {self.config.ssh_host} refused: {exc.reason}",
            )
        except asyncssh.PermissionDenied as exc:
            return Outcome(
                reason="infra_error",
                message=f"ssh login to {self.config.ssh_user}@{self.config.ssh_host} refused: "
                f"{exc.reason}",
            )
        except (asyncssh.Error, OSError) as exc:
            return Outcome(
                reason="infra_error",
                message=f"ssh to {self.config.ssh_host}:{self.config.ssh_port} failed: {exc}",
            )
        if capped.exceeded:
            reporter.log(
                "system",
                f"output cap of {capped.cap} bytes reached; the command was stopped\n".encode(),
            )
            return Outcome(
                reason="exit_nonzero",
                exit_code=code,
                message=f"host.ssh {op} stopped: output passed the {capped.cap}-byte cap",
            )
        if op == "probe":
            facts: dict[str, Any] = parse_probe(capped.stdout.decode(errors="replace"))
            facts["elapsed_s"] = round(time.monotonic() - started, 3)
            reporter.log("system", (json.dumps({"probe": facts}, sort_keys=True) + "\n").encode())
        if code == 0:
            return Outcome(reason="succeeded", exit_code=0)
        return Outcome(
            reason="exit_nonzero", exit_code=code, message=f"host.ssh {op} exited with {code}"
        )

    async def _exec(
        self, conn: asyncssh.SSHClientConnection, command: str, capped: _Capped
    ) -> int | None:
        """Run ``command`` in its own session on the host (``setsid``), stream both outputs into
        ``capped``; on the cap, a timeout or a stop, kill its whole process group."""
        process = await conn.create_process(_wrap(command), encoding=None, stdin=asyncssh.DEVNULL)
        pgid: list[int] = []

        async def pump(stream: Any, name: str) -> None:
            head: bytes | None = b"" if name == "stderr" else None
            while not capped.exceeded:
                data = await stream.read(_READ_CHUNK)
                if not data:
                    return
                if head is not None:  # the first stderr line is the process group id
                    head += data
                    if b"\n" not in head:
                        continue
                    first, _, data = head.partition(b"\n")
                    head = None
                    if first.startswith(_PGID_MARKER) and first[len(_PGID_MARKER) :].isdigit():
                        pgid.append(int(first[len(_PGID_MARKER) :]))
                    else:
                        data = first + b"\n" + data
                    if not data:
                        continue
                capped.feed(name, data)

        pumps = [
            asyncio.create_task(pump(process.stdout, "stdout")),
            asyncio.create_task(pump(process.stderr, "stderr")),
        ]
        try:
            while pumps and not capped.exceeded:
                done, _ = await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    t.result()
                pumps = [t for t in pumps if not t.done()]
            if capped.exceeded:
                return None
            await process.wait_closed()
            return process.exit_status
        finally:
            for t in pumps:
                t.cancel()
            if process.exit_status is None:
                if pgid:
                    with contextlib.suppress(asyncssh.Error, OSError, TimeoutError):
                        await asyncio.wait_for(
                            conn.run(f"kill -KILL -- -{pgid[0]}", check=False), 5.0
                        )
                process.close()

    async def stop(self, ref: AttemptRef, reason: StopReason) -> None:
        task = self._active.get(ref)
        if task is not None and not task.done():
            self._stop_reasons.setdefault(ref, reason)
            task.cancel()

    async def owned_attempts(self) -> list[AttemptRef]:
        return sorted(self._active, key=lambda r: (r.task_id, r.attempt_no))

    async def remove_orphans(self, keep: set[AttemptRef]) -> None:
        for ref in [r for r in self._active if r not in keep]:
            await self.stop(ref, "reconcile")

    async def health(self) -> str | None:
        return None
