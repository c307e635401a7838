"""Simulated agents for bench_scheduler.py: many minimal protocol clients in one process.

Each node: Hello, then a Heartbeat every interval, and for every Dispatch an Ack, a running
AttemptState and an exited(0) AttemptState at once. The dispatch latency is the receive time
minus the ``BENCH_SUBMIT_TS`` the benchmark put in the task's env (same machine, same clock),
kept per ``BENCH_PHASE`` (also from the env). A node whose socket closes (or that cannot
connect) dials again after the agent's own delay (``unidesk.gateway_agent.connection.Redial``:
full jitter up to ``--backoff-cap``; after a 1001/1012 close the short restart bound for the
restart window; a 503's ``Retry-After`` honoured), as the real agent does after a server
restart. First joins are paced at ``--connect-rate`` per second (the fleet's first start is not
what the storm measures). The process raises its file-descriptor limit to the hard limit.

Commands on stdin, one per line: ``stats`` prints a JSON line of counters; ``stop`` prints
the final JSON (with latencies) and exits. Not a test; run by bench_scheduler.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import resource
import sys
import time
from pathlib import Path

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from unidesk import protocol
from unidesk.gateway_agent.connection import Redial

__all__ = ["main"]


class Fleet:
    def __init__(
        self,
        url: str,
        tokens: list[str],
        *,
        heartbeat_s: float,
        cpus: float,
        prefix: str,
        compression: str | None = "deflate",
        backoff_cap_s: float = 60.0,
        restart_cap_s: float = 5.0,
        connect_rate: float = 0.0,
    ) -> None:
        self.url = url
        self.compression = compression
        self.tokens = tokens
        self.heartbeat_s = heartbeat_s
        self.cpus = cpus
        self.prefix = prefix
        self.backoff_cap_s = backoff_cap_s
        self.restart_cap_s = restart_cap_s
        self._pace_s = 1.0 / connect_rate if connect_rate > 0 else 0.0
        self._next_start = 0.0
        self.online = 0
        self.refused = 0
        """Dials refused before the upgrade (HTTP 503 + Retry-After from a busy server)."""
        self.hellos = 0
        self.connected = 0
        self.failed = 0
        self.closed: dict[str, int] = {}
        self.heartbeats = 0
        self.dispatches = 0
        self.duplicates = 0
        self.frames_in = 0
        self.frames_out = 0
        self.latencies: dict[str, list[float]] = {}
        self.arrivals: dict[str, float] = {}
        """Receive time (epoch s) of each single-phase dispatch, by task id (stage breakdown)."""
        self._seen: set[tuple[str, int]] = set()
        self._stop = asyncio.Event()

    def stats(self, *, final: bool = False) -> dict[str, object]:
        out: dict[str, object] = {
            "connected": self.connected,
            "online": self.online,
            "hellos": self.hellos,
            "failed": self.failed,
            "refused": self.refused,
            "closed": self.closed,
            "heartbeats": self.heartbeats,
            "dispatches": self.dispatches,
            "duplicates": self.duplicates,
            "frames_in": self.frames_in,
            "frames_out": self.frames_out,
        }
        if final:
            out["latencies"] = self.latencies
            out["arrivals"] = self.arrivals
        return out

    async def _paced(self) -> None:
        """Wait for this node's slot in the paced first start."""
        if not self._pace_s:
            return
        now = time.monotonic()
        start = max(now, self._next_start)
        self._next_start = start + self._pace_s
        await asyncio.sleep(start - now)

    async def node(self, i: int, token: str, gate: asyncio.Semaphore) -> None:
        """Join, serve, and after a closed socket dial again after the agent's redial delay
        (bounded by stop)."""
        name = f"{self.prefix}-{i}"
        redial = Redial(cap_s=self.backoff_cap_s, restart_cap_s=self.restart_cap_s)
        joined_once = False
        await self._paced()
        while not self._stop.is_set():
            ws = await self._join(name, token, gate, redial, report=not joined_once)
            if ws is None:
                if not joined_once and redial.failures >= 3:  # first joins: 3 tries
                    self.failed += 1
                    return
            else:
                joined_once = True
                redial.connected()
                await self._serve(ws)
                redial.closed(ws.close_code)
            await asyncio.sleep(redial.next_delay())

    async def _join(
        self,
        name: str,
        token: str,
        gate: asyncio.Semaphore,
        redial: Redial,
        *,
        report: bool,
    ) -> ClientConnection | None:
        try:
            # the gate bounds the first start only: after a restart every node redials on its
            # own schedule, as real agents on their own machines do (a shared gate of 64 in
            # flight capped the storm at 64 / hello latency)
            async with gate if report else contextlib.nullcontext():
                ws = await connect(
                    self.url,
                    additional_headers={"Authorization": f"Bearer {token}"},
                    open_timeout=120,
                    max_size=protocol.MAX_FRAME_BYTES,
                    ping_interval=None,
                    compression=self.compression,
                )
                await ws.send(
                    protocol.encode(
                        protocol.Hello(
                            protocol_version=protocol.PROTOCOL_VERSION,
                            agent_version="bench",
                            node_name=name,
                            hostname=name,
                            os="Linux",
                            cpus=self.cpus,
                            memory_mb=64 * 1024,
                        )
                    )
                )
                welcome = protocol.decode(await asyncio.wait_for(ws.recv(), 120))  # type: ignore[arg-type]
                assert isinstance(welcome, protocol.Welcome), welcome
        except Exception as exc:
            redial.refused(exc)
            if isinstance(exc, InvalidStatus) and exc.response.status_code == 503:
                self.refused += 1
            elif report:
                print(f"node {name} failed to join: {type(exc).__name__}: {exc}", file=sys.stderr)
            return None
        self.hellos += 1
        if report:
            self.connected += 1
        return ws

    async def _serve(self, ws: ClientConnection) -> None:
        self.online += 1
        unacked: dict[tuple[str, int], None] = {}
        """Final reports sent and not yet acknowledged: the heartbeat lists them as finished, as
        the real agent does (else the server's reconciliation would take them for lost)."""
        beat = asyncio.create_task(self._heartbeats(ws, unacked))
        try:
            async for frame in ws:
                self.frames_in += 1
                msg = protocol.decode(frame)  # type: ignore[arg-type]
                if isinstance(msg, protocol.Dispatch):
                    unacked[(msg.task_id, msg.attempt_no)] = None
                    await self._run(ws, msg)
                elif isinstance(msg, protocol.Ack):
                    unacked.pop((msg.task_id, msg.attempt_no), None)
        except ConnectionClosed:
            pass
        finally:
            self.online -= 1
            beat.cancel()
            key = str(ws.close_code)
            self.closed[key] = self.closed.get(key, 0) + 1

    async def _run(self, ws: ClientConnection, d: protocol.Dispatch) -> None:
        now = time.time()
        key = (d.task_id, d.attempt_no)
        if key in self._seen:
            self.duplicates += 1
        else:
            self._seen.add(key)
            self.dispatches += 1
            submitted = d.env.get("BENCH_SUBMIT_TS")
            if submitted:
                phase = d.env.get("BENCH_PHASE", "main")
                self.latencies.setdefault(phase, []).append(now - float(submitted))
                if phase == "single":
                    self.arrivals[str(d.task_id)] = now
        self.frames_out += 3  # ack, running, exited (heartbeats are counted apart)
        await ws.send(protocol.encode(protocol.Ack(task_id=d.task_id, attempt_no=d.attempt_no)))
        await ws.send(
            protocol.encode(
                protocol.AttemptState(task_id=d.task_id, attempt_no=d.attempt_no, phase="running")
            )
        )
        await ws.send(
            protocol.encode(
                protocol.AttemptState(
                    task_id=d.task_id,
                    attempt_no=d.attempt_no,
                    phase="exited",
                    exit_code=0,
                    reason="succeeded",
                )
            )
        )

    async def _heartbeats(self, ws: ClientConnection, unacked: dict[tuple[str, int], None]) -> None:
        await asyncio.sleep(
            random.random() * self.heartbeat_s
        )  # spread the fleet over the interval
        seq = 0
        while True:
            seq += 1
            try:
                finished = [protocol.AttemptRef(task_id=t, attempt_no=n) for t, n in unacked]
                await ws.send(
                    protocol.encode(
                        protocol.Heartbeat(seq=seq, sent_at=time.time(), finished=finished)
                    )
                )
            except ConnectionClosed:
                return
            self.heartbeats += 1
            await asyncio.sleep(self.heartbeat_s)

    async def commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            if line == "stats":
                print(json.dumps(self.stats()), flush=True)
            elif line == "latencies":
                print(json.dumps(self.stats(final=True)), flush=True)
            elif line == "stop":
                break
        print(json.dumps(self.stats(final=True)), flush=True)
        self._stop.set()


async def run(args: argparse.Namespace) -> None:
    tokens = [t for t in Path(args.tokens).read_text().split() if t]
    fleet = Fleet(
        args.url,
        tokens,
        heartbeat_s=args.heartbeat,
        cpus=args.cpus,
        prefix=args.prefix,
        compression=None if args.no_compression else "deflate",
        backoff_cap_s=args.backoff_cap,
        restart_cap_s=args.restart_cap,
        connect_rate=args.connect_rate,
    )
    gate = asyncio.Semaphore(args.connect_concurrency)
    nodes = [asyncio.create_task(fleet.node(i, t, gate)) for i, t in enumerate(tokens)]
    cmd = asyncio.create_task(fleet.commands())
    await cmd
    for n in nodes:
        n.cancel()
    await asyncio.gather(*nodes, return_exceptions=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--url", required=True, help="ws://host:port/api/agent/ws")
    p.add_argument("--tokens", required=True, help="file with one node token per line")
    p.add_argument("--heartbeat", type=float, default=1.0)
    p.add_argument("--cpus", type=float, default=4.0)
    p.add_argument("--prefix", default="sim")
    p.add_argument("--connect-concurrency", type=int, default=64)
    p.add_argument(
        "--backoff-cap", type=float, default=60.0, help="reconnect delay cap (s), as the agent's"
    )
    p.add_argument(
        "--restart-cap",
        type=float,
        default=5.0,
        help="reconnect delay cap (s) after a 1001/1012 close, as the agent's",
    )
    p.add_argument(
        "--connect-rate", type=float, default=0.0, help="first joins per second (0: unpaced)"
    )
    p.add_argument(
        "--no-compression",
        action="store_true",
        help="do not offer permessage-deflate (the real agent does)",
    )
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()
