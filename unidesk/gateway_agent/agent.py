"""The agent's main loop: connect, say Hello, take dispatches, report attempts, heartbeat,
reconnect.

Delivery rules this module keeps (see ``unidesk.protocol`` for the call order):
- a Dispatch is acked at once and run once per ``(task_id, attempt_no)``, however often it comes;
- non-final states are best effort, the latest one per attempt is re-sent after a reconnect;
- log chunks stay buffered until the server's LogAck and are re-sent, in seq order, after a
  reconnect; all of an attempt's output is sent before its final state;
- data batches (``AttemptData``, e.g. metrics tailed from ``$UNIDESK_METRICS_FILE``) follow the
  log rules: kept until the server's AttemptDataAck, re-sent after a reconnect, and an attempt's
  last batches go out before its final state;
- final states are kept in the state file until the server's Ack for them (sent once the
  outcome is committed), and re-sent after every reconnect and every restart;
- acknowledged or retried, never silent: a final state, log chunk or data batch the server
  answers with a Nack (it could not store it) is sent again on the same socket after a backoff,
  and so is one not acknowledged within ``report_resend_s`` (the delay doubles per try);
- heartbeats carry the attempts running here and those ended whose final report is unacked,
  so the server can reconcile them with the database while the socket stays up;
- self-fencing: with no contact with the server for longer than its offline timeout (after
  which the server declares this node's attempts lost), running attempts are stopped and
  reported ``killed`` once the server is reachable again;
- replaced by another agent with the same token (close 4409), the agent exits and leaves its
  containers running: the other agent, or this one restarted, adopts them.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from contextlib import suppress
from typing import Any

import msgspec
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from unidesk.background import TaskSet
from unidesk.protocol import (
    CLOSE_BAD_FRAME,
    CLOSE_REPLACED,
    PROTOCOL_VERSION,
    Ack,
    AttemptDataAck,
    AttemptRef,
    AttemptState,
    Cancel,
    ClearCaches,
    Dispatch,
    Error,
    Heartbeat,
    Hello,
    LogAck,
    Message,
    Nack,
    Reconcile,
    Welcome,
    decode,
    encode,
)

from .attempt import AttemptRun, final_state
from .config import AgentConfig
from .confine import Beneath
from .connection import RETRYABLE, FinalRefusal, Redial, dial, final_refusal_for
from .datafeed import DataFeed
from .logbuffer import FLUSH_INTERVAL_S, AttemptLog
from .resend import ResendSchedule
from .resources import NodeResources, sample_usage
from .runner import AdoptingRunner, Outcome, Runner, StopReason
from .state import StateFile

__all__ = ["Agent"]

log = logging.getLogger(__name__)

WELCOME_TIMEOUT_S = 30.0
FINAL_ACK_WAIT_S = 5.0
"""On a graceful stop, how long to wait for the server to acknowledge final reports."""
_REMEMBERED_FINALS = 10_000
RESEND_TICK_S = 0.25
"""How often the agent looks for reports due to be sent again, and checks its lease."""


class Agent:
    """One node's agent; ``await run()`` until a graceful stop (0) or a final refusal (non-zero)."""

    def __init__(
        self,
        config: AgentConfig,
        runner: Runner,
        *,
        resources: NodeResources,
        state: StateFile,
        maintenance: Runner | None = None,
        node_health: Any = None,
    ) -> None:
        self.config = config
        self.runner = runner
        self.maintenance = maintenance
        """Runs ``host.ssh`` dispatches (``hostssh.HostSshRunner``); None: this node has no
        host.ssh."""
        self.node_health = node_health
        """``health.NodeHealth`` (Docker, disk, k3s-in-container); None: only the runner's
        health."""
        self.resources = resources
        self.state = state
        self.heartbeat_interval_s = config.heartbeat_interval_s or 15.0
        self._ws: ClientConnection | None = None
        self._send_lock = asyncio.Lock()
        self._slots = asyncio.Semaphore(config.concurrency)
        self._runs: dict[AttemptRef, AttemptRun] = {}
        self._logs: dict[AttemptRef, AttemptLog] = {}
        self._feeds: dict[tuple[AttemptRef, str], DataFeed] = {}
        self._finished: collections.OrderedDict[AttemptRef, AttemptState] = (
            collections.OrderedDict()
        )
        self._flush_event = asyncio.Event()
        self._closed = asyncio.Event()
        self._hurry = asyncio.Event()
        self._draining = False
        self._heartbeat_seq = 0
        self._background = TaskSet()
        self._adoptable: set[AttemptRef] = set()
        """Attempts a previous agent process left running, reported in Hello until reconciled."""
        self._resend = ResendSchedule(
            after_s=config.report_resend_s, cap_s=config.report_resend_cap_s
        )
        self._state_nacks: set[AttemptRef] = set()
        """Running attempts whose latest non-final state the server could not store."""
        self._last_contact = time.monotonic()
        """When the server was last heard from (a frame, a pong, the Welcome)."""
        self.offline_timeout_s = config.self_fence_after_s or 90.0
        self._fenced = False

    # ---- public -------------------------------------------------------------------------

    @property
    def running(self) -> list[AttemptRef]:
        """Attempts accepted and not yet final (including those waiting for a free slot)."""
        return list(self._runs) + sorted(
            self._adoptable - set(self._runs), key=lambda r: (r.task_id, r.attempt_no)
        )

    async def run(self) -> int:
        await self._clean_up_leftovers()
        self._last_contact = time.monotonic()
        flusher = asyncio.create_task(self._flush_loop())
        keeper = asyncio.create_task(self._keeper_loop())
        redial = Redial(
            cap_s=self.config.backoff_cap_s,
            restart_cap_s=self.config.restart_redial_cap_s,
            restart_window_s=self.config.restart_window_s,
        )
        try:
            while not self._closed.is_set():
                try:
                    ws = await dial(self.config)
                except RETRYABLE as exc:
                    redial.refused(exc)
                    log.warning("cannot reach %s: %s", self.config.ws_url, exc)
                else:
                    if self._closed.is_set():
                        await ws.close(1000, "agent shutting down")
                        break
                    if await self._session(ws):
                        redial.connected()
                    redial.closed(ws.close_code)
                if self._closed.is_set():
                    break
                delay = redial.next_delay()
                log.info(
                    "reconnecting in %.1f s%s",
                    delay,
                    " (the server is restarting)" if redial.restarting else "",
                )
                with suppress(TimeoutError):
                    await asyncio.wait_for(self._closed.wait(), delay)
            log.info("agent stopped")
            return 0
        except FinalRefusal as exc:
            log.error("%s; giving up (not retrying)", exc)
            if exc.code == CLOSE_REPLACED:
                self._leave_running()
            else:
                await self._abandon()
            return exc.exit_code
        finally:
            flusher.cancel()
            keeper.cancel()

    def request_stop(self) -> None:
        """SIGTERM: take no new work, let attempts finish (grace), stop the rest, report, close."""
        if self._draining:
            log.warning("second stop request: stopping running attempts now")
            self._hurry.set()
            return
        self._draining = True
        log.info("stopping: no new work; %d attempt(s) running", len(self._runs))
        self._background.spawn(self._shutdown())

    async def send_state(self, report: AttemptState) -> bool:
        return await self._send(report)

    def flush_soon(self) -> None:
        self._flush_event.set()

    def watch_data(self, ref: AttemptRef, channel: str, path: Beneath) -> None:
        """Follow a file the attempt appends JSON lines to; batches go out with the log flushes."""
        self._feeds[(ref, channel)] = DataFeed(ref.task_id, ref.attempt_no, channel, path)

    async def drain_data(self, ref: AttemptRef) -> None:
        """Final read of the attempt's data files (the runner calls it before removing them)."""
        for (r, _channel), feed in list(self._feeds.items()):
            if r == ref and not feed.closed:
                await self._poll_feed(feed, final=True)

    # ---- connection ---------------------------------------------------------------------

    async def _hello(self) -> Hello:
        """Hello reports every attempt this agent still answers for: running ones, and ended ones
        whose final report the server has not acknowledged. The server's reconcile would
        otherwise count an attempt that ended while the link was down as lost and run it again."""
        r = self.resources
        running = self.running
        unconfirmed = [AttemptRef(f.task_id, f.attempt_no) for f in self.state.state.finals]
        running += [ref for ref in dict.fromkeys(unconfirmed) if ref not in set(running)]
        return Hello(
            protocol_version=PROTOCOL_VERSION,
            agent_version=r.agent_version,
            node_name=r.node_name,
            hostname=r.hostname,
            os=r.os,
            cpus=r.cpus,
            memory_mb=r.memory_mb,
            gpus=r.gpus,
            labels=r.labels,
            runtimes=r.runtimes,
            host_mounts=r.host_mounts,
            running=running,
            instance_id=self.state.state.instance_id,
            unhealthy_reason=await self._health(),
        )

    async def _session(self, ws: ClientConnection) -> bool:
        """One connection's life; True when the server welcomed us. Raises ``FinalRefusal``."""
        welcomed = False
        heartbeat: asyncio.Task[None] | None = None
        try:
            await ws.send(encode(await self._hello()))
            first = decode(await asyncio.wait_for(ws.recv(decode=False), WELCOME_TIMEOUT_S))
            if not isinstance(first, Welcome):
                raise msgspec.ValidationError(f"expected welcome, got {type(first).__name__}")
            welcomed = True
            self.heartbeat_interval_s = (
                self.config.heartbeat_interval_s or first.heartbeat_interval_s
            )
            self.offline_timeout_s = self.config.self_fence_after_s or first.offline_timeout_s
            self._touch()
            self._fenced = False
            await self.state.set_node_id(first.node_id)
            log.info(
                "connected to %s as node %s (%s)",
                self.config.ws_url,
                first.node_id,
                self.resources.node_name,
            )
            async with self._send_lock:
                self._ws = ws
                await self._replay(ws)
            heartbeat = asyncio.create_task(self._heartbeat_loop(ws))
            async for frame in ws:
                self._touch()
                await self._on_frame(frame)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.error("the server sent an unexpected first frame (%s); reconnecting", exc)
            await ws.close(CLOSE_BAD_FRAME, "expected welcome")
        except RETRYABLE as exc:
            log.warning("connection lost: %s", exc)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
            if self._ws is ws:
                self._ws = None
        final = final_refusal_for(ws.close_code, ws.close_reason or "")
        if final is not None:
            raise final
        if not self._closed.is_set():
            log.warning("disconnected (close %s %s)", ws.close_code, ws.close_reason or "")
        return welcomed

    async def _replay(self, ws: ClientConnection) -> None:
        """After (re)connecting: latest states, unacked logs in order, then unconfirmed finals."""
        for run in self._runs.values():
            if run.last_state is not None:
                await ws.send(encode(run.last_state))
        for buffer in self._logs.values():
            for chunk in buffer.unacked():
                await ws.send(encode(chunk))
        for feed in self._feeds.values():
            for batch in feed.unacked():
                await ws.send(encode(batch))
        for report in list(self.state.state.finals):
            await ws.send(encode(report))
        self._resend.reset()
        self._state_nacks.clear()

    async def _send(self, msg: Message) -> bool:
        async with self._send_lock:
            return await self._send_locked(msg)

    async def _send_locked(self, msg: Message) -> bool:
        ws = self._ws
        if ws is None:
            return False
        try:
            await ws.send(encode(msg))
            return True
        except ConnectionClosed:
            return False

    async def _wait_final_acks(self, timeout_s: float) -> None:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while self.state.state.finals and self._ws is not None:
            if asyncio.get_running_loop().time() > deadline:
                log.warning(
                    "%d final report(s) not acknowledged; kept for the next start",
                    len(self.state.state.finals),
                )
                return
            await asyncio.sleep(0.05)

    # ---- incoming -----------------------------------------------------------------------

    async def _on_frame(self, frame: str | bytes) -> None:
        try:
            msg = decode(frame if isinstance(frame, bytes) else frame.encode())
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            log.warning("ignoring a frame the agent cannot decode: %s", exc)
            await self._send(Error(code="bad_frame", message=str(exc)[:200]))
            return
        if isinstance(msg, Dispatch):
            await self._on_dispatch(msg)
        elif isinstance(msg, Cancel):
            await self._on_stop(AttemptRef(msg.task_id, msg.attempt_no), "cancelled")
        elif isinstance(msg, Reconcile):
            await self._on_reconcile(msg)
        elif isinstance(msg, ClearCaches):
            self._background.spawn(self._clear_caches(msg))
        elif isinstance(msg, LogAck):
            self._on_log_ack(msg)
        elif isinstance(msg, AttemptDataAck):
            self._on_data_ack(msg)
        elif isinstance(msg, Ack):  # the server committed our final report of this attempt
            await self.state.confirm({AttemptRef(msg.task_id, msg.attempt_no)})
        elif isinstance(msg, Nack):
            self._on_nack(msg)
        elif isinstance(msg, Error):
            log.warning("server reported a problem: %s: %s", msg.code, msg.message)
        else:
            log.warning("ignoring unexpected %s from the server", type(msg).__name__)

    async def _on_dispatch(self, msg: Dispatch) -> None:
        ref = AttemptRef(msg.task_id, msg.attempt_no)
        ack = Ack(task_id=msg.task_id, attempt_no=msg.attempt_no)
        if ref in self._runs:
            await self._send(ack)
            return
        if ref in self._finished:
            await self._send(ack)
            await self._send(self._finished[ref])
            return
        if self._draining:
            await self._send(
                Error(
                    code="draining",
                    message=f"agent is stopping; {ref.task_id}/{ref.attempt_no} not accepted",
                )
            )
            return
        try:
            run = AttemptRun(self, ref, msg, first_log_seq=self.state.next_log_seq(ref))
        except Exception as exc:  # this attempt fails, visibly; the connection and others go on
            log.exception("cannot accept %s/%s", ref.task_id, ref.attempt_no)
            report = AttemptState(
                task_id=ref.task_id,
                attempt_no=ref.attempt_no,
                phase="failed",
                reason="infra_error",
                # the type only: the exception's text might quote a secret of the dispatch
                message=f"the agent could not accept this attempt ({type(exc).__name__})",
            )
            await self._send(ack)
            self._remember(report)
            await self.state.finish(report)
            await self._send(report)
            return
        self._runs[ref] = run
        self._logs[ref] = run.log_buffer
        await self.state.own(ref)
        await self._send(ack)
        run.task = asyncio.create_task(self._execute(run))

    async def _on_stop(self, ref: AttemptRef, reason: StopReason) -> None:
        run = self._runs.get(ref)
        if run is None:
            if ref in self._finished:
                await self._send(self._finished[ref])
            elif reason == "cancelled":
                await self._send(
                    AttemptState(
                        task_id=ref.task_id,
                        attempt_no=ref.attempt_no,
                        phase="failed",
                        reason="cancelled",
                        message="attempt was not running on this node",
                    )
                )
            return
        run.stop_reason = run.stop_reason or reason
        if run.in_runner:
            self._background.spawn(self._stop_in_runner(ref, reason))
        elif run.task is not None:
            run.task.cancel()

    async def _on_reconcile(self, msg: Reconcile) -> None:
        """Kill what the server no longer expects; adopt left-over attempts it keeps."""
        for ref in msg.kill:
            await self._on_stop(ref, "reconcile")
        adoptable, self._adoptable = self._adoptable, set()
        keep = set(msg.keep)
        for ref in adoptable:
            if ref in keep and ref not in self._runs:
                run = AttemptRun(self, ref, first_log_seq=self.state.next_log_seq(ref))
                run.in_runner = run.command_started = True
                self._runs[ref] = run
                self._logs[ref] = run.log_buffer
                run.task = asyncio.create_task(self._execute(run))
                log.info(
                    "adopted attempt %s/%s left running by a previous agent",
                    ref.task_id,
                    ref.attempt_no,
                )
            elif ref not in keep:
                await self._stop_in_runner(ref, "reconcile")
                await self._finish_leftover(
                    ref, "the server no longer expected this attempt; stopped"
                )

    async def _run_dispatch(self, dispatch: Dispatch, run: AttemptRun) -> Outcome:
        """Ordinary tasks go to the runner (Docker); host.ssh maintenance only over SSH; nothing
        else."""
        if dispatch.missing_secrets:
            return Outcome(
                reason="infra_error",
                message="secret(s) no longer in the store (deleted since submit): "
                + ", ".join(dispatch.missing_secrets),
            )
        if dispatch.kind == "container":
            return await self.runner.run(dispatch, run)
        if dispatch.kind == "host.ssh" and self.maintenance is not None:
            return await self.maintenance.run(dispatch, run)
        return Outcome(
            reason="infra_error", message=f"this node does not run {dispatch.kind} dispatches"
        )

    async def _stop_in_runner(self, ref: AttemptRef, reason: StopReason) -> None:
        try:
            if self.maintenance is not None:
                await self.maintenance.stop(ref, reason)
            await self.runner.stop(ref, reason)
        except Exception:
            log.exception("runner failed to stop %s/%s", ref.task_id, ref.attempt_no)

    def _on_log_ack(self, msg: LogAck) -> None:
        ref = AttemptRef(msg.task_id, msg.attempt_no)
        buffer = self._logs.get(ref)
        if buffer is None:
            return
        buffer.ack(msg.seq)
        if ref not in self._runs and buffer.idle:
            del self._logs[ref]

    def _on_data_ack(self, msg: AttemptDataAck) -> None:
        ref = AttemptRef(msg.task_id, msg.attempt_no)
        feed = self._feeds.get((ref, msg.channel))
        if feed is None:
            return
        feed.ack(msg.seq)
        if feed.idle:
            del self._feeds[(ref, msg.channel)]

    def _on_nack(self, msg: Nack) -> None:
        """The server could not store a report: schedule it again (backoff)."""
        ref = AttemptRef(msg.task_id, msg.attempt_no)
        if msg.of == "log":
            self._resend.nacked(("log", ref, msg.seq))
        elif msg.of == "attempt_data":
            self._resend.nacked(("data", ref, msg.channel, msg.seq))
        elif any(_ref(f) == ref for f in self.state.state.finals):
            self._resend.nacked(("final", ref))
        elif ref in self._runs:
            self._state_nacks.add(ref)
            self._resend.nacked(("state", ref))

    def _unacked_reports(self) -> dict[tuple[Any, ...], Message]:
        """Everything sent and not yet acknowledged, in sending order: output, data, finals;
        keyed by ``(kind, ...)``."""
        items: dict[tuple[Any, ...], Message] = {}
        for buffer in self._logs.values():
            for chunk in buffer.unacked():
                items[("log", AttemptRef(chunk.task_id, chunk.attempt_no), chunk.seq)] = chunk
        for feed in self._feeds.values():
            for batch in feed.unacked():
                ref = AttemptRef(batch.task_id, batch.attempt_no)
                items[("data", ref, batch.channel, batch.seq)] = batch
        for ref in list(self._state_nacks):
            run = self._runs.get(ref)
            if run is None or run.last_state is None:
                self._state_nacks.discard(ref)
            else:
                items[("state", ref)] = run.last_state
        for report in self.state.state.finals:
            items[("final", _ref(report))] = report
        return items

    async def _resend_due(self) -> None:
        """Send again, on the live socket, what is due (Nacked, or unacked past the bound)."""
        if self._ws is None:
            return
        items = self._unacked_reports()
        due = self._resend.due(items)
        if not due:
            return
        log.info("sending %d unacknowledged report(s) again", len(due))
        async with self._send_lock:
            for key in due:
                if await self._send_locked(items[key]) and key[0] == "state":
                    self._state_nacks.discard(key[1])

    async def _poll_feed(self, feed: DataFeed, *, final: bool = False) -> None:
        ref = AttemptRef(feed.task_id, feed.attempt_no)
        try:
            batches, problems = await asyncio.to_thread(feed.read, final=final)
        except Exception:
            log.exception(
                "reading the %s file of %s/%s failed", feed.channel, ref.task_id, ref.attempt_no
            )
            return
        run = self._runs.get(ref)
        for problem in problems:
            if run is not None:
                run.log("system", f"[unidesk] {problem}\n".encode())
        async with self._send_lock:
            for batch in batches:
                await self._send_locked(batch)
        if feed.idle:
            self._feeds.pop((ref, feed.channel), None)

    # ---- attempts -----------------------------------------------------------------------

    async def _execute(self, run: AttemptRun) -> None:
        reporting = False
        try:
            async with self._slots:
                if run.stop_reason is not None:
                    raise asyncio.CancelledError
                run.in_runner = True
                try:
                    if run.dispatch is None:  # adopted: its container already runs
                        # only a runner with adopt() (Docker) reports running attempts to adopt
                        if not isinstance(self.runner, AdoptingRunner):
                            raise RuntimeError("this runner cannot adopt a running attempt")
                        outcome = await self.runner.adopt(
                            run.ref, run, log_mark=self.state.log_mark(run.ref)
                        )
                    else:
                        await run.preparing()
                        outcome = await self._run_dispatch(run.dispatch, run)
                except Exception as exc:
                    log.exception("runner failed on %s/%s", run.ref.task_id, run.ref.attempt_no)
                    outcome = Outcome(reason="infra_error", message=f"runner error: {exc}")
                finally:
                    run.in_runner = False
                # the slot is held until the end is reported: a queued attempt starts after it
                reporting = True
                await self._finish(run, self._final_report(run, outcome))
                return
        except asyncio.CancelledError:
            if run.stop_reason is None or reporting:
                raise
            outcome = Outcome(
                reason="cancelled" if run.stop_reason == "cancelled" else "killed",
                message=f"stopped ({run.stop_reason}) before it started",
            )
        await self._finish(run, self._final_report(run, outcome))

    def _final_report(self, run: AttemptRun, outcome: Outcome) -> AttemptState:
        report = final_state(run, outcome)
        if run.stop_reason == "fenced":  # the runner says "stopped"; the report says why
            report = msgspec.structs.replace(
                report, phase="failed", reason="killed", message=self._fence_message()
            )
        return report

    async def _finish(self, run: AttemptRun, report: AttemptState) -> None:
        await self.drain_data(run.ref)
        async with self._send_lock:
            chunks = run.log_buffer.cut(final=True)
            if chunks:
                await self.state.set_log_seqs(
                    {run.ref: run.log_buffer.next_seq}, {run.ref: run.log_buffer.mark}
                )
            for chunk in chunks:
                await self._send_locked(chunk)
        self._runs.pop(run.ref, None)
        if run.log_buffer.idle:
            self._logs.pop(run.ref, None)
        self._remember(report)
        await self.state.finish(report)
        log.info("attempt %s/%s ended: %s", run.ref.task_id, run.ref.attempt_no, report.reason)
        await self._send(report)

    def _remember(self, report: AttemptState) -> None:
        self._finished[AttemptRef(report.task_id, report.attempt_no)] = report
        while len(self._finished) > _REMEMBERED_FINALS:
            self._finished.popitem(last=False)

    async def _clean_up_leftovers(self) -> None:
        """At start: attempts a previous agent left still running (or whose container ended while
        no agent ran) are offered to the server for adoption (when the runner can re-attach, e.g.
        Docker containers); the rest are stopped and reported as killed."""
        can_adopt = isinstance(self.runner, AdoptingRunner)
        owned = set(self.state.state.owned)
        try:
            still_running = set(await self.runner.owned_attempts())
            exited = getattr(self.runner, "exited_attempts", None)
            if can_adopt and exited is not None:
                # ended while no agent ran: adopted, its exit code is the attempt's outcome
                still_running |= set(await exited()) & owned
            self._adoptable = still_running if can_adopt else set()
            await self.runner.remove_orphans(set(self._adoptable))
        except Exception:
            log.exception("could not list or clean up attempts left by a previous run")
            still_running = set()
        for ref in (owned | still_running) - self._adoptable:
            await self._finish_leftover(
                ref, "the agent restarted while this attempt ran; it was stopped"
            )
        for report in self.state.state.finals:
            self._remember(report)

    async def _finish_leftover(self, ref: AttemptRef, message: str) -> None:
        log.warning(
            "attempt %s/%s left by a previous agent: %s", ref.task_id, ref.attempt_no, message
        )
        report = AttemptState(
            task_id=ref.task_id,
            attempt_no=ref.attempt_no,
            phase="failed",
            reason="killed",
            message=message,
        )
        await self.state.finish(report)
        self._remember(report)
        await self._send(report)

    # ---- periodic work ------------------------------------------------------------------

    async def _health(self) -> str | None:
        try:
            if self.node_health is not None:
                return await self.node_health.check()
            return await self.runner.health()
        except Exception as exc:
            return f"runner health check failed: {exc}"

    async def _send_heartbeat(self) -> None:
        self._heartbeat_seq += 1
        usage = await sample_usage(self.config.cache_dir, with_gpus=bool(self.resources.gpus))
        cache_usage = getattr(self.runner, "cache_usage", None)
        if cache_usage is not None:
            try:
                usage = msgspec.structs.replace(usage, caches=await cache_usage())
            except Exception as exc:
                log.warning("could not measure the caches: %s", exc)
        await self._send(
            Heartbeat(
                seq=self._heartbeat_seq,
                usage=usage,
                running=self.running,
                finished=list(dict.fromkeys(_ref(f) for f in self.state.state.finals)),
                unhealthy_reason=await self._health(),
                sent_at=time.time(),
            )
        )

    async def _clear_caches(self, msg: ClearCaches) -> None:
        """An admin's "clear caches": evict what no attempt uses, then report the new sizes."""
        clear = getattr(self.runner, "clear_caches", None)
        if clear is None:
            log.info("clear caches (%s): this runner keeps no caches", msg.request_id)
            return
        try:
            removed = await clear()
            log.info(
                "caches cleared (%s): %s",
                msg.request_id,
                ", ".join(f"{len(v)} {k}" for k, v in removed.items()),
            )
        except Exception as exc:
            log.warning("clearing the caches failed: %s", exc)
        await self._send_heartbeat()

    async def _heartbeat_loop(self, ws: ClientConnection) -> None:
        """Heartbeat, then ping: a pong is contact with the server. A link silent for three
        intervals (at least 5 s) is dropped, so the agent dials again instead of waiting for
        TCP to notice."""
        while True:
            await asyncio.sleep(self.heartbeat_interval_s)
            try:
                await self._send_heartbeat()
                pong = asyncio.ensure_future(await ws.ping())  # a Future already: no new task
                pong.add_done_callback(self._on_pong)
            except ConnectionClosed:
                return
            except Exception:
                log.exception("could not send a heartbeat")
            silent = time.monotonic() - self._last_contact
            if silent > max(3 * self.heartbeat_interval_s, 5.0):
                log.warning("no answer from the server for %.1f s; dropping the connection", silent)
                ws.transport.abort()
                return

    def _touch(self) -> None:
        self._last_contact = time.monotonic()

    def _on_pong(self, waiter: asyncio.Future[float]) -> None:
        if not waiter.cancelled() and waiter.exception() is None:  # not the socket closing
            self._touch()

    async def _keeper_loop(self) -> None:
        """Resend what is due and keep the lease: past the server's offline timeout without
        contact, stop every attempt (the server has declared them lost and may run them again)."""
        while True:
            await asyncio.sleep(RESEND_TICK_S)
            try:
                await self._resend_due()
                silent = time.monotonic() - self._last_contact
                if silent > self.offline_timeout_s and not self._fenced:
                    await self._self_fence(silent)
            except Exception:
                log.exception("resend or lease check failed")

    def _fence_message(self) -> str:
        return (
            f"self-fenced: the node could not reach the server for more than "
            f"{self.offline_timeout_s:g} s (the server's offline timeout), "
            "so it stopped the attempt"
        )

    async def _self_fence(self, silent: float) -> None:
        self._fenced = True
        leftovers = sorted(
            self._adoptable - set(self._runs), key=lambda r: (r.task_id, r.attempt_no)
        )
        if not self._runs and not leftovers:
            return
        log.warning(
            "no contact with the server for %.0f s (offline timeout %g s): stopping %d attempt(s)",
            silent,
            self.offline_timeout_s,
            len(self._runs) + len(leftovers),
        )
        self._adoptable = set()
        for ref in leftovers:
            await self._stop_in_runner(ref, "fenced")
            await self._finish_leftover(ref, self._fence_message())
        await self._stop_all("fenced")

    async def _flush_loop(self) -> None:
        while True:
            with suppress(TimeoutError):
                await asyncio.wait_for(self._flush_event.wait(), FLUSH_INTERVAL_S)
            self._flush_event.clear()
            await self._flush_logs()

    async def _flush_logs(self) -> None:
        for feed in [f for f in self._feeds.values() if not f.closed]:
            await self._poll_feed(feed)
        async with self._send_lock:
            chunks = [chunk for buffer in list(self._logs.values()) for chunk in buffer.cut()]
            # the numbers are on disk before any chunk goes out: an agent restarted after a crash
            # continues after every seq the server may hold (a reused seq is a repeat to the
            # server, which keeps the first copy: the new output would be lost)
            await self.state.set_log_seqs(
                {ref: run.log_buffer.next_seq for ref, run in self._runs.items()},
                {ref: run.log_buffer.mark for ref, run in self._runs.items()},
            )
            for chunk in chunks:
                await self._send_locked(chunk)

    # ---- stopping -----------------------------------------------------------------------

    async def _wait_runs(self, timeout_s: float) -> None:
        """Wait until every attempt ended, ``timeout_s`` passed, or a second stop request came."""
        tasks = [r.task for r in self._runs.values() if r.task is not None]
        if not tasks:
            return
        waiters = [
            asyncio.create_task(asyncio.wait(tasks)),
            asyncio.create_task(self._hurry.wait()),
        ]
        await asyncio.wait(waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waiters:
            waiter.cancel()

    async def _stop_all(self, reason: StopReason) -> None:
        for ref in list(self._runs):
            await self._on_stop(ref, reason)

    async def _shutdown(self) -> None:
        await self._wait_runs(self.config.shutdown_grace_s)
        await self._stop_all("shutdown")
        await self._wait_runs(self.config.shutdown_grace_s)
        await self._flush_logs()
        ws = self._ws
        if ws is not None:
            await self._send_heartbeat()
            await self._wait_final_acks(FINAL_ACK_WAIT_S)
        self._closed.set()
        if ws is not None:
            await ws.close(1000, "agent shutting down")

    def _leave_running(self) -> None:
        """Replaced by another agent with this token: end this process and leave every attempt
        running (a container is followed by whichever agent adopts it); nothing is reported."""
        self._draining = True
        for run in list(self._runs.values()):
            run.stop_reason = None
            if run.task is not None:
                run.task.cancel()

    async def _abandon(self) -> None:
        """After a final refusal: stop everything; outcomes stay in the state file for later."""
        self._draining = True
        await self._stop_all("shutdown")
        await self._wait_runs(self.config.shutdown_grace_s)
        for run in list(self._runs.values()):
            if run.task is not None:
                run.task.cancel()


def _ref(report: AttemptState) -> AttemptRef:
    return AttemptRef(report.task_id, report.attempt_no)
