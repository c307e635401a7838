"""Apply what agents report (acks, attempt states, log chunks, attempt data), batched into few
transactions.

Every report is fenced: it must name an attempt that exists, belongs to the reporting node,
and is still in a state the report can move. Anything else is a duplicate or stale report:
recorded as a fact where useful, and it changes nothing (and is acknowledged: the agent may
forget it). A report that cannot be applied at all (the database is down) reaches its callback
as ``NOT_APPLIED``: the socket answers with a Nack and the agent sends it again.

A batch is applied by set, not report by report: its tasks and attempts are locked and read in
two statements; every report is then followed in memory, in order per attempt, through the same
guarded moves (and the retry policy's ``decide``) as a report alone would take, collecting its
events; the outcome is written in one UPDATE of the attempts, one of the tasks (a retried task
alone: its own columns), one INSERT of the new log chunks and one INSERT of the events. Only
attempt data goes to the plugins report by report.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy import func, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from unidesk import protocol
from unidesk.core.background import cancel_and_wait
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.writer import NewEvent, append_many
from unidesk.core.ingress.nulscrub import replace_nul
from unidesk.core.nodes.services import node_event
from unidesk.core.tasks.models import TaskRow
from unidesk.core.tasks.policy import PolicyTask, decide, needs_node
from unidesk.core.tasks.states import (
    ATTEMPT_ACTIVE_STATES,
    TASK_FINAL_STATES,
    AttemptEndReason,
)
from unidesk.core.tasks.transitions import task_event
from unidesk.errors import UnideskError

__all__ = ["NOT_APPLIED", "Report", "ReportWriter", "apply_batch"]

log = structlog.get_logger("unidesk.ingress")

Done = Callable[[Any], Awaitable[None]]


class _NotApplied:
    def __repr__(self) -> str:
        return "NOT_APPLIED"


NOT_APPLIED: Any = _NotApplied()
"""What a report's ``done`` callback gets when its transaction failed: nothing was stored."""


class Report(msgspec.Struct, kw_only=True):
    node_id: uuid.UUID
    node_name: str
    msg: protocol.Ack | protocol.AttemptState | protocol.LogChunk | protocol.AttemptData
    done: Any = None
    """Run after commit with the apply result (None: fenced), or with ``NOT_APPLIED``."""


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


_INT4 = range(-(2**31), 2**31)
"""An attempt number or seq outside the columns' range names nothing stored (a report
carrying one is fenced, not a failed batch Nacked for ever)."""


def _key(r: Report) -> tuple[uuid.UUID, int] | None:
    task_id = _uuid(r.msg.task_id)
    if task_id is None or r.msg.attempt_no not in _INT4:
        return None
    return task_id, r.msg.attempt_no


class _Attempt:
    """A locked attempt row, followed in memory through the batch; written once at its end."""

    __slots__ = (
        "acked",
        "attempt_no",
        "dirty",
        "exit_code",
        "finished",
        "from_state",
        "log_bytes",
        "log_truncated",
        "message",
        "node_id",
        "node_name",
        "reason",
        "stage",
        "started",
        "state",
        "task_id",
    )

    def __init__(self, row: Any) -> None:
        self.task_id: uuid.UUID = row.task_id
        self.attempt_no: int = row.attempt_no
        self.node_id: uuid.UUID | None = row.node_id
        self.node_name: str = row.node_name
        self.state: str = row.state
        self.from_state: str = row.state
        self.stage: str | None = row.stage
        self.reason: str | None = row.reason
        self.exit_code: int | None = row.exit_code
        self.message: str | None = row.message
        self.log_bytes: int = row.log_bytes
        self.log_truncated: bool = row.log_truncated
        self.acked = self.started = self.finished = self.dirty = False


class _Task:
    """A locked task's policy columns, followed in memory through the batch."""

    __slots__ = ("from_state", "id", "policy", "values")

    def __init__(self, row: Any) -> None:
        self.id: uuid.UUID = row.id
        self.policy = PolicyTask(
            state=row.state,
            attempt_count=row.attempt_count,
            max_attempts=row.max_attempts,
            retry_on_failure=row.retry_on_failure,
            avoid_node_ids=list(row.avoid_node_ids or []),
            timeout_s=row.timeout_s,
        )
        self.from_state: str = row.state
        self.values: dict[str, Any] = {}
        """Columns besides state the batch sets (a policy decision's)."""

    @property
    def state(self) -> str:
        return self.policy.state

    @state.setter
    def state(self, value: str) -> None:
        self.policy.state = value


# Every writer locks task → attempt, in id order.
_LOCK_TASKS_SQL = text(
    """
    SELECT id, state, attempt_count, max_attempts, retry_on_failure, avoid_node_ids, timeout_s
    FROM tasks WHERE id = ANY(CAST(:ids AS uuid[])) ORDER BY id FOR UPDATE
    """
)
_LOCK_ATTEMPTS_SQL = text(
    """
    SELECT a.task_id, a.attempt_no, a.node_id, a.node_name, a.state, a.stage, a.reason,
           a.exit_code, a.message, a.log_bytes, a.log_truncated
    FROM task_attempts a
    JOIN unnest(CAST(:tids AS uuid[]), CAST(:nos AS int[])) AS k(task_id, attempt_no)
      ON a.task_id = k.task_id AND a.attempt_no = k.attempt_no
    ORDER BY a.task_id, a.attempt_no FOR UPDATE OF a
    """
)
# One instant per batch for the moves it applies (an attempt acked, started and ended in one
# batch gets the same time for all three: they were stored together).
_WRITE_ATTEMPTS_SQL = text(
    """
    UPDATE task_attempts a SET
      state = v.state,
      acked_at = CASE WHEN v.acked THEN coalesce(a.acked_at, n.now) ELSE a.acked_at END,
      started_at = CASE WHEN v.started THEN n.now ELSE a.started_at END,
      finished_at = CASE WHEN v.finished THEN n.now ELSE a.finished_at END,
      stage = v.stage, reason = v.reason, exit_code = v.exit_code, message = v.message,
      log_bytes = v.log_bytes, log_truncated = v.log_truncated
    FROM unnest(CAST(:task_id AS uuid[]), CAST(:attempt_no AS int[]),
                CAST(:from_state AS text[]), CAST(:state AS text[]), CAST(:acked AS boolean[]),
                CAST(:started AS boolean[]), CAST(:finished AS boolean[]),
                CAST(:stage AS text[]), CAST(:reason AS text[]), CAST(:exit_code AS int[]),
                CAST(:message AS text[]), CAST(:log_bytes AS bigint[]),
                CAST(:log_truncated AS boolean[]))
         AS v(task_id, attempt_no, from_state, state, acked, started, finished, stage, reason,
              exit_code, message, log_bytes, log_truncated),
         (SELECT clock_timestamp() AS now) AS n
    WHERE a.task_id = v.task_id AND a.attempt_no = v.attempt_no AND a.state = v.from_state
    """
)
_WRITE_TASKS_SQL = text(
    """
    UPDATE tasks t SET
      state = v.state, updated_at = clock_timestamp(),
      reason = CASE WHEN v.decided THEN v.reason ELSE t.reason END,
      message = CASE WHEN v.decided THEN v.message ELSE t.message END,
      finished_at = CASE WHEN v.final THEN clock_timestamp() ELSE t.finished_at END
    FROM unnest(CAST(:id AS uuid[]), CAST(:from_state AS text[]), CAST(:state AS text[]),
                CAST(:decided AS boolean[]), CAST(:final AS boolean[]),
                CAST(:reason AS text[]), CAST(:message AS text[]))
         AS v(id, from_state, state, decided, final, reason, message)
    WHERE t.id = v.id AND t.state = v.from_state
    """
)
_EXISTING_CHUNKS_SQL = text(
    """
    SELECT c.task_id, c.attempt_no, c.seq FROM log_chunks c
    JOIN unnest(CAST(:tids AS uuid[]), CAST(:nos AS int[]), CAST(:seqs AS int[]))
         AS k(task_id, attempt_no, seq)
      ON c.task_id = k.task_id AND c.attempt_no = k.attempt_no AND c.seq = k.seq
    """
)
_INSERT_CHUNKS_SQL = text(
    """
    INSERT INTO log_chunks (task_id, attempt_no, seq, stream, data, ts)
    SELECT v.task_id, v.attempt_no, v.seq, v.stream, v.data, coalesce(v.ts, now())
    FROM unnest(CAST(:task_id AS uuid[]), CAST(:attempt_no AS int[]), CAST(:seq AS int[]),
                CAST(:stream AS text[]), CAST(:data AS text[]), CAST(:ts AS timestamptz[]))
         AS v(task_id, attempt_no, seq, stream, data, ts)
    ON CONFLICT DO NOTHING
    """
)


class _Batch:
    """One batch's locked rows, the events it writes (in order) and its results."""

    def __init__(
        self, tasks: dict[uuid.UUID, _Task], attempts: dict[tuple[uuid.UUID, int], _Attempt]
    ) -> None:
        self.tasks = tasks
        self.attempts = attempts
        self.events: list[NewEvent] = []
        self.results: dict[int, Any] = {}

    def attempt(self, r: Report) -> _Attempt | None:
        """The report's attempt if it is the reporting node's; else a ``node.foreign_report``
        fact (the report changes nothing) and None."""
        key = _key(r)
        a = self.attempts.get(key) if key is not None else None
        if a is not None and a.node_id == r.node_id:
            return a
        self.events.append(
            node_event(
                r.node_id,
                "node.foreign_report",
                f"node:{r.node_name}",
                task_id=r.msg.task_id[:64],
                attempt_no=r.msg.attempt_no,
                message_type=type(r.msg).__name__,
            )
        )
        return None


async def _lock(session: AsyncSession, reports: list[Report]) -> _Batch:
    """Lock every task, then every attempt, a batch names (two statements, id order) and read
    what the reports decide on."""
    keys = {key for r in reports if (key := _key(r)) is not None}
    if not keys:
        return _Batch({}, {})
    ordered = sorted(keys)
    tasks = {
        row.id: _Task(row)
        for row in await session.execute(_LOCK_TASKS_SQL, {"ids": sorted({k[0] for k in keys})})
    }
    attempts = {
        (row.task_id, row.attempt_no): _Attempt(row)
        for row in await session.execute(
            _LOCK_ATTEMPTS_SQL, {"tids": [k[0] for k in ordered], "nos": [k[1] for k in ordered]}
        )
    }
    return _Batch(tasks, attempts)


def _ack(b: _Batch, r: Report, a: _Attempt) -> bool:
    """assigned → preparing (``task.acked``), the task with it (``task.preparing``)."""
    if a.state != "assigned":
        return False
    actor = f"node:{r.node_name}"
    a.state, a.acked, a.dirty = "preparing", True, True
    b.events.append(
        task_event(a.task_id, "task.acked", actor, attempt_no=a.attempt_no, node=r.node_name)
    )
    t = b.tasks[a.task_id]
    if t.state == "assigned":
        t.state = "preparing"
        b.events.append(task_event(a.task_id, "task.preparing", actor, attempt_no=a.attempt_no))
    return True


_FINAL_ATTEMPT_STATE = {"succeeded": "succeeded", "cancelled": "cancelled"}


def _state(b: _Batch, r: Report, a: _Attempt) -> bool:
    m: protocol.AttemptState = r.msg  # type: ignore[assignment]  # the caller chose by kind
    actor = f"node:{r.node_name}"
    t = b.tasks[a.task_id]
    if m.phase == "preparing":
        _ack(b, r, a)
        if a.state in ("assigned", "preparing") and m.stage and m.stage != a.stage:
            a.stage, a.dirty = m.stage[:32], True
            b.events.append(
                task_event(
                    a.task_id, "task.stage", actor, attempt_no=a.attempt_no, stage=m.stage[:32]
                )
            )
        return True
    if m.phase == "running":
        if a.state not in ("assigned", "preparing"):
            return False
        a.state, a.started, a.acked, a.stage, a.dirty = "running", True, True, None, True
        if t.state in ("assigned", "preparing"):
            t.state = "running"
            b.events.append(task_event(a.task_id, "task.started", actor, attempt_no=a.attempt_no))
        return True
    # exited / failed: a final fact, then the policy's decision ("killed" becomes "node_lost")
    reason: AttemptEndReason = m.reason or (
        "succeeded"
        if m.phase == "exited" and m.exit_code == 0
        else "infra_error"
        if m.phase == "failed"
        else "exit_nonzero"
    )
    if reason == "killed":
        # The agent stopped it on its own (graceful shutdown, or not kept after a restart):
        # for the task that is the node losing the attempt, so the retry policy applies.
        reason = "node_lost"
    message = (m.message or "")[:4000] or None
    if a.state not in ATTEMPT_ACTIVE_STATES:
        b.events.append(
            task_event(
                a.task_id,
                "task.stale_report",
                actor,
                attempt_no=a.attempt_no,
                phase=m.phase,
                reason=reason,
                message=message,
                attempt_state=a.state,
            )
        )
        return True  # already final: the agent may forget it
    a.state = "lost" if reason == "node_lost" else _FINAL_ATTEMPT_STATE.get(reason, "failed")
    a.reason, a.exit_code, a.message, a.finished, a.dirty = reason, m.exit_code, message, True, True
    b.events.append(
        task_event(
            a.task_id,
            "task.exited",
            actor,
            attempt_no=a.attempt_no,
            exit_code=m.exit_code,
            reason=reason,
            message=message,
        )
    )
    node = (a.node_id, a.node_name) if needs_node(t.policy, a.attempt_no, reason) else None
    decision = decide(
        t.policy,
        a.task_id,
        a.attempt_no,
        reason=reason,
        exit_code=m.exit_code,
        message=message,
        node=node,
    )
    if decision is not None and t.state in decision.from_states:
        t.state = decision.to
        t.values = decision.values
        if "avoid_node_ids" in decision.values:
            t.policy.avoid_node_ids = list(decision.values["avoid_node_ids"])
        b.events.append(decision.event)
    return True


def _source_time(ts: float) -> datetime | None:
    """The agent's source time as a timestamp; None (now(), when stored) if no clock gives it."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return None


async def _logs(
    session: AsyncSession, b: _Batch, chunks: list[tuple[int, Report, _Attempt]], cap: int
) -> None:
    """Store the batch's log chunks (in seq order per attempt) in one INSERT: a chunk already
    stored (a resend) adds nothing; an attempt's output past ``cap`` bytes is cut with a note,
    and what follows is dropped. Every chunk's result is its seq (stored, or deliberately not:
    the agent may forget it)."""
    if not chunks:
        return
    existing = {
        (row.task_id, row.attempt_no, row.seq)
        for row in await session.execute(
            _EXISTING_CHUNKS_SQL,
            {
                "tids": [a.task_id for _, _, a in chunks],
                "nos": [a.attempt_no for _, _, a in chunks],
                "seqs": [r.msg.seq for _, r, _ in chunks],  # type: ignore[union-attr]  # chunks
            },
        )
    }
    cols: dict[str, list[Any]] = {
        k: [] for k in ("task_id", "attempt_no", "seq", "stream", "data", "ts")
    }
    for i, r, a in chunks:
        m: protocol.LogChunk = r.msg  # type: ignore[assignment]  # the caller chose by kind
        b.results[i] = m.seq
        key = (a.task_id, a.attempt_no, m.seq)
        if a.log_truncated or key in existing:
            continue
        existing.add(key)
        # PostgreSQL text cannot hold U+0000, which a task may print: stored as U+FFFD, like the
        # bytes the agent could not decode (refusing the chunk would resend it for ever).
        data = replace_nul(m.data)
        raw = data.encode()
        size = len(raw)
        if a.log_bytes + size > cap:
            kept = raw[: max(0, cap - a.log_bytes)].decode(
                errors="ignore"
            )  # the cap counts bytes, not characters
            data = kept + f"\n[unidesk] log truncated: this attempt's output passed {cap} bytes\n"
            a.log_truncated = True
        a.log_bytes += size
        a.dirty = True
        for k, v in (
            ("task_id", a.task_id),
            ("attempt_no", a.attempt_no),
            ("seq", m.seq),
            ("stream", m.stream),
            ("data", data),
            # the source time of the chunk's first line (else: when the server stored it)
            ("ts", _source_time(m.ts) if m.ts > 0 else None),
        ):
            cols[k].append(v)
    if cols["seq"]:
        await session.execute(_INSERT_CHUNKS_SQL, cols)


async def _write(session: AsyncSession, b: _Batch) -> None:
    """Write what the batch changed: the attempts in one UPDATE, the tasks in one (a retried
    task's own columns alone), each guarded by the state it was read in."""
    attempts = [a for a in b.attempts.values() if a.dirty]
    if attempts:
        cols: dict[str, list[Any]] = {
            k: [getattr(a, k) for a in attempts]
            for k in (
                "task_id",
                "attempt_no",
                "from_state",
                "state",
                "acked",
                "started",
                "finished",
                "stage",
                "reason",
                "exit_code",
                "message",
                "log_bytes",
                "log_truncated",
            )
        }
        written = (await session.execute(_WRITE_ATTEMPTS_SQL, cols)).rowcount  # type: ignore[attr-defined]  # an UPDATE's result
        if written != len(attempts):  # the rows are locked: only a bug could get here
            raise RuntimeError(f"report batch wrote {written} of {len(attempts)} attempts")
    moved = [t for t in b.tasks.values() if t.state != t.from_state]
    plain = [t for t in moved if t.state != "pending"]
    if plain:
        written = (
            await session.execute(
                _WRITE_TASKS_SQL,
                {
                    "id": [t.id for t in plain],
                    "from_state": [t.from_state for t in plain],
                    "state": [t.state for t in plain],
                    "decided": [bool(t.values) for t in plain],
                    "final": [t.state in TASK_FINAL_STATES for t in plain],
                    "reason": [t.values.get("reason") for t in plain],
                    "message": [t.values.get("message") for t in plain],
                },
            )
        ).rowcount  # type: ignore[attr-defined]  # an UPDATE's result
        if written != len(plain):
            raise RuntimeError(f"report batch wrote {written} of {len(plain)} tasks")
    for t in moved:
        if t.state == "pending":  # a retry: the policy's own columns (few: retries are rare)
            await session.execute(
                update(TaskRow)
                .where(TaskRow.id == t.id, TaskRow.state == t.from_state)
                .values(state="pending", updated_at=func.clock_timestamp(), **t.values)
            )


async def _masked(session: AsyncSession, r: Report, task_id: uuid.UUID, masks: Any) -> Report:
    m = r.msg
    if isinstance(m, protocol.LogChunk) or (isinstance(m, protocol.AttemptState) and m.message):
        masker = await masks.masker(session, task_id)
        if masker is not None:
            if isinstance(m, protocol.LogChunk):
                m = msgspec.structs.replace(m, data=masker.mask(m.data))
            else:
                m = msgspec.structs.replace(m, message=masker.mask(m.message or ""))
            return msgspec.structs.replace(r, msg=m)
    return r


async def _data(session: AsyncSession, r: Report, a: _Attempt, plugins: Any) -> int:
    """Hand the batch to the plugins (``unidesk_attempt_data``) inside a savepoint. A plugin's
    refusal (UnideskError) is logged and acknowledged; other errors fail the report (resent
    later)."""
    m: protocol.AttemptData = r.msg  # type: ignore[assignment]  # the caller chose by kind
    handled: list[str] = []
    if plugins is not None:
        try:
            async with session.begin_nested():
                handled = await plugins.attempt_data(
                    session,
                    a.task_id,
                    a.attempt_no,
                    m.channel[:64],
                    m.seq,
                    m.items,
                    skipped_lines=max(0, m.skipped_lines),
                    skipped_samples=[
                        str(t)[: protocol.MAX_SKIPPED_SAMPLE_CHARS]
                        for t in m.skipped_samples[: protocol.MAX_SKIPPED_SAMPLES]
                    ],
                )
        except UnideskError as exc:
            log.info(
                "attempt data refused",
                task_id=str(a.task_id),
                attempt_no=a.attempt_no,
                channel=m.channel[:64],
                detail=exc.detail,
            )
            return m.seq
    if not handled:
        log.warning(
            "attempt data dropped: no loaded plugin handles its channel",
            task_id=str(a.task_id),
            channel=m.channel[:64],
            items=len(m.items),
        )
    return m.seq


async def apply_batch(
    session: AsyncSession,
    ordered: list[Report],
    *,
    log_cap: int,
    plugins: Any = None,
    masks: Any = None,
) -> list[Any]:
    """Apply ``ordered`` (sorted by attempt, then seq; arrival order kept within) in the
    session's transaction; returns each report's result (None: fenced). With ``masks`` (the
    secret store's ``AttemptMasks``), secret values in log text and state messages are masked
    again before anything is stored."""
    b = await _lock(session, ordered)
    chunks: list[tuple[int, Report, _Attempt]] = []
    data: list[tuple[int, Report, _Attempt]] = []
    for i, r in enumerate(ordered):
        a = b.attempt(r)
        if a is None:
            b.results[i] = None
            continue
        if masks is not None:
            r = await _masked(session, r, a.task_id, masks)
        m = r.msg
        if isinstance(m, protocol.Ack):
            b.results[i] = _ack(b, r, a)
        elif isinstance(m, protocol.AttemptState):
            b.results[i] = _state(b, r, a)
        elif isinstance(m, protocol.LogChunk):
            if m.seq in _INT4:
                chunks.append((i, r, a))
            else:  # no chunk can be stored under it: refused, and the agent may forget it
                log.info("log chunk refused: seq out of range", node=r.node_name, seq=m.seq)
                b.results[i] = m.seq
        else:
            data.append((i, r, a))
    await _logs(session, b, chunks, log_cap)
    await _write(session, b)
    await append_many(session, b.events)  # one INSERT, one NOTIFY
    for i, r, a in data:  # plugins write (and append their events) in a savepoint each
        b.results[i] = await _data(session, r, a, plugins)
    return [b.results[i] for i in range(len(ordered))]


class ReportWriter:
    """Collects reports from every socket on this instance and applies them in batches."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        *,
        log_cap: int,
        max_batch: int = 256,
        plugins: Any = None,
        masks: Any = None,
    ) -> None:
        self._sessions = sessions
        self._masks = masks
        self._log_cap = log_cap
        self._plugins = plugins
        self._max_batch = max_batch
        self._queue: asyncio.Queue[Report] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.name = "report-writer"

    def submit(self, report: Report) -> None:
        self._queue.put_nowait(report)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="report-writer")

    async def stop(self) -> None:
        await cancel_and_wait([self._task])

    async def _run(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self._max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            await self._apply(batch)

    async def _apply(self, batch: list[Report]) -> None:
        ordered = sorted(
            batch, key=lambda r: (r.msg.task_id, r.msg.attempt_no, getattr(r.msg, "seq", 0))
        )

        async def work(session: AsyncSession) -> list[Any]:
            return await apply_batch(
                session, ordered, log_cap=self._log_cap, plugins=self._plugins, masks=self._masks
            )

        try:
            results = await in_transaction(self._sessions, work, name="reports")
        except Exception:
            if len(batch) == 1:
                log.exception(
                    "report could not be applied",
                    node=batch[0].node_name,
                    message_type=type(batch[0].msg).__name__,
                )
                if (
                    batch[0].done is not None
                ):  # "not stored": a Nack goes out, redelivery guards are released
                    try:
                        await batch[0].done(NOT_APPLIED)
                    except Exception:
                        log.exception("report callback failed")
                return
            for r in batch:  # isolate the one bad report; the rest still apply
                await self._apply([r])
            return
        for r, result in zip(ordered, results, strict=False):
            if r.done is not None:
                try:
                    await r.done(result)
                except Exception:
                    log.exception("report callback failed")
