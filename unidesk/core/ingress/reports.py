"""Apply what agents report (acks, attempt states, log chunks, attempt data), batched into few
transactions.

Every report is fenced: it must name an attempt that exists, belongs to the reporting node,
and is still in a state the report can move. Anything else is a duplicate or stale report:
recorded as a fact where useful, and it changes nothing (and is acknowledged: the agent may
forget it). A report that cannot be applied at all (the database is down) reaches its callback
as ``NOT_APPLIED``: the socket answers with a Nack and the agent sends it again.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy import func, select, text, tuple_, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from unidesk import protocol
from unidesk.core.background import cancel_and_wait
from unidesk.core.db.tx import in_transaction
from unidesk.core.events.writer import append, append_many, defer_events, flush_deferred
from unidesk.core.ingress.nulscrub import replace_nul
from unidesk.core.logs.models import LogChunkRow
from unidesk.core.nodes.services import node_event
from unidesk.core.tasks.models import AttemptRow, TaskRow
from unidesk.core.tasks.policy import apply_attempt_end
from unidesk.core.tasks.states import AttemptEndReason
from unidesk.core.tasks.transitions import move_attempt, move_task, task_event
from unidesk.errors import UnideskError

__all__ = ["NOT_APPLIED", "Report", "ReportWriter", "apply_leading", "apply_report", "lock_batch"]

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


_READ_FIELDS = frozenset({"node_id", "state", "stage", "log_bytes", "log_truncated"})


async def lock_batch(session: AsyncSession, reports: list[Report]) -> None:
    """Lock every task, then every attempt, a batch names, in two statements (id order), so the
    reports after it need no locking round trips of their own."""
    keys = {(tid, r.msg.attempt_no) for r in reports if (tid := _uuid(r.msg.task_id)) is not None}
    if not keys:
        return
    await session.execute(
        select(TaskRow.id)
        .where(TaskRow.id.in_(sorted({k[0] for k in keys})))
        .order_by(TaskRow.id)
        .with_for_update()
    )
    # Consumed (``.all()``) so the rows land in the session's identity map for session.get.
    (
        await session.scalars(
            select(AttemptRow)
            .where(tuple_(AttemptRow.task_id, AttemptRow.attempt_no).in_(sorted(keys)))
            .order_by(AttemptRow.task_id, AttemptRow.attempt_no)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
    ).all()


_ACK_SQL = text(
    """
    UPDATE task_attempts a SET state = 'preparing', acked_at = clock_timestamp()
    FROM unnest(CAST(:tids AS uuid[]), CAST(:nos AS int[])) AS k(task_id, attempt_no)
    WHERE a.task_id = k.task_id AND a.attempt_no = k.attempt_no AND a.state = 'assigned'
    RETURNING a.task_id, a.attempt_no
    """
)
_RUNNING_SQL = text(
    """
    UPDATE task_attempts a SET state = 'running', started_at = clock_timestamp(),
        acked_at = coalesce(a.acked_at, clock_timestamp()), stage = NULL
    FROM unnest(CAST(:tids AS uuid[]), CAST(:nos AS int[])) AS k(task_id, attempt_no)
    WHERE a.task_id = k.task_id AND a.attempt_no = k.attempt_no
      AND a.state IN ('assigned', 'preparing')
    RETURNING a.task_id, a.attempt_no
    """
)
_MOVE_TASKS_SQL = text(
    """
    UPDATE tasks SET state = :to, updated_at = clock_timestamp()
    WHERE id = ANY(CAST(:ids AS uuid[])) AND state = ANY(CAST(:from_states AS text[]))
    RETURNING id
    """
)


async def apply_leading(session: AsyncSession, ordered: list[Report]) -> dict[int, bool]:
    """Apply, for every attempt of a locked batch, its leading Ack and then its leading
    ``running`` state in one statement per table for the whole batch (the same guarded moves
    and events as ``apply_report``'s, per attempt in the order they came); returns
    ``{index in ordered: applied}``. Reports of a foreign or unknown attempt, and everything
    after an attempt's leading ones, are left to ``apply_report`` in order."""
    acks: dict[int, Report] = {}
    runs: dict[int, Report] = {}
    step: dict[tuple[str, int], int] = {}  # 0: nothing yet, 1: after the ack, 2: done
    for i, r in enumerate(ordered):
        key = (r.msg.task_id, r.msg.attempt_no)
        at = step.get(key, 0)
        step[key] = 2
        if at == 2:
            continue
        m = r.msg
        if at == 0 and isinstance(m, protocol.Ack):
            into, step[key] = acks, 1
        elif isinstance(m, protocol.AttemptState) and m.phase == "running":
            into = runs
        else:
            continue
        task_id = _uuid(m.task_id)
        a = await session.get(AttemptRow, (task_id, m.attempt_no)) if task_id else None
        if a is None or a.node_id != r.node_id or _READ_FIELDS & sa_inspect(a).unloaded:
            continue  # fenced (a fact to record) or not loaded: apply_report's
        into[i] = r
    applied: dict[int, bool] = {}
    for reports, sql, to, from_states in (
        (acks, _ACK_SQL, "preparing", ["assigned"]),
        (runs, _RUNNING_SQL, "running", ["assigned", "preparing"]),
    ):
        if not reports:
            continue
        tids = [r.msg.task_id for r in reports.values()]
        nos = [r.msg.attempt_no for r in reports.values()]
        moved = {
            (str(t), n) for t, n in (await session.execute(sql, {"tids": tids, "nos": nos})).all()
        }
        ids = sorted({k[0] for k in moved})
        tasks_moved = (
            {
                str(t)
                for t in (
                    await session.scalars(
                        _MOVE_TASKS_SQL, {"to": to, "ids": ids, "from_states": from_states}
                    )
                ).all()
            }
            if ids
            else set()
        )
        events = []
        for i, r in reports.items():
            m = r.msg
            ok = (m.task_id, m.attempt_no) in moved
            applied[i] = ok
            if not ok:
                continue
            a = await session.get(AttemptRow, (uuid.UUID(m.task_id), m.attempt_no))
            if a is not None:  # the loaded row follows what was written
                set_committed_value(a, "state", to)
                if to == "running":
                    set_committed_value(a, "stage", None)
            tid, actor = uuid.UUID(m.task_id), f"node:{r.node_name}"
            if to == "preparing":
                events.append(
                    task_event(tid, "task.acked", actor, attempt_no=m.attempt_no, node=r.node_name)
                )
            if m.task_id in tasks_moved:
                events.append(
                    task_event(tid, "task.preparing", actor, attempt_no=m.attempt_no)
                    if to == "preparing"
                    else task_event(tid, "task.started", actor, attempt_no=m.attempt_no)
                )
        await append_many(session, events)
    return applied


async def _fenced_attempt(
    session: AsyncSession, r: Report, *, locked: bool = False
) -> AttemptRow | None:
    task_id = _uuid(r.msg.task_id)
    attempt = None
    if task_id is not None:
        key = (task_id, r.msg.attempt_no)
        if locked:  # lock_batch loaded it; reload only what an earlier report in the batch expired
            attempt = await session.get(AttemptRow, key)
            if attempt is not None and _READ_FIELDS & sa_inspect(attempt).unloaded:
                await session.refresh(attempt)
        else:
            # Lock the task first: every writer locks task → attempt in that order.
            await session.execute(select(TaskRow.id).where(TaskRow.id == task_id).with_for_update())
            attempt = await session.get(
                AttemptRow, key, with_for_update=True, populate_existing=True
            )
    if attempt is None or attempt.node_id != r.node_id:
        await append(
            session,
            node_event(
                r.node_id,
                "node.foreign_report",
                f"node:{r.node_name}",
                task_id=r.msg.task_id[:64],
                attempt_no=r.msg.attempt_no,
                message_type=type(r.msg).__name__,
            ),
        )
        return None
    return attempt


async def _ack(session: AsyncSession, r: Report, a: AttemptRow) -> bool:
    actor = f"node:{r.node_name}"
    moved = await move_attempt(
        session,
        a.task_id,
        a.attempt_no,
        from_states=("assigned",),
        to="preparing",
        acked_at=func.clock_timestamp(),
        event=task_event(a.task_id, "task.acked", actor, attempt_no=a.attempt_no, node=r.node_name),
    )
    if moved:
        await move_task(
            session,
            a.task_id,
            from_states=("assigned",),
            to="preparing",
            event=task_event(a.task_id, "task.preparing", actor, attempt_no=a.attempt_no),
        )
    return moved


_FINAL_ATTEMPT_STATE = {"succeeded": "succeeded", "cancelled": "cancelled"}


async def _state(session: AsyncSession, r: Report, a: AttemptRow) -> bool:
    m: protocol.AttemptState = r.msg  # type: ignore[assignment]  # the caller chose by kind
    actor = f"node:{r.node_name}"
    if m.phase == "preparing":
        if a.state == "assigned":
            await _ack(session, r, a)
        if a.state in ("assigned", "preparing") and m.stage and m.stage != a.stage:
            await session.execute(
                update(AttemptRow)
                .where(AttemptRow.task_id == a.task_id, AttemptRow.attempt_no == a.attempt_no)
                .values(stage=m.stage[:32])
            )
            await append(
                session,
                task_event(
                    a.task_id, "task.stage", actor, attempt_no=a.attempt_no, stage=m.stage[:32]
                ),
            )
        return True
    if m.phase == "running":
        moved = await move_attempt(
            session,
            a.task_id,
            a.attempt_no,
            from_states=("assigned", "preparing"),
            to="running",
            started_at=func.clock_timestamp(),
            acked_at=func.coalesce(AttemptRow.acked_at, func.clock_timestamp()),
            stage=None,
        )
        if moved:
            await move_task(
                session,
                a.task_id,
                from_states=("assigned", "preparing"),
                to="running",
                event=task_event(a.task_id, "task.started", actor, attempt_no=a.attempt_no),
            )
        return moved
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
    to = "lost" if reason == "node_lost" else _FINAL_ATTEMPT_STATE.get(reason, "failed")
    message = (m.message or "")[:4000] or None
    fact = task_event(
        a.task_id,
        "task.exited",
        actor,
        attempt_no=a.attempt_no,
        exit_code=m.exit_code,
        reason=reason,
        message=message,
    )
    moved = await move_attempt(
        session,
        a.task_id,
        a.attempt_no,
        from_states=("assigned", "preparing", "running"),
        to=to,
        reason=reason,
        exit_code=m.exit_code,
        message=message,
        event=fact,
    )
    if not moved:
        await append(
            session,
            task_event(
                a.task_id,
                "task.stale_report",
                actor,
                attempt_no=a.attempt_no,
                phase=m.phase,
                reason=reason,
                message=message,
                attempt_state=a.state,
            ),
        )
        return True  # already final: the agent may forget it
    await apply_attempt_end(
        session,
        a.task_id,
        a.attempt_no,
        reason=reason,
        exit_code=m.exit_code,
        message=message,
        actor="system:policy",
    )
    return True


async def _log(session: AsyncSession, r: Report, a: AttemptRow, cap: int) -> int:
    m: protocol.LogChunk = r.msg  # type: ignore[assignment]  # the caller chose by kind
    if a.log_truncated:
        return m.seq
    # PostgreSQL text cannot hold U+0000, which a task may print: stored as U+FFFD, like the
    # bytes the agent could not decode (refusing the chunk would resend it for ever).
    data = replace_nul(m.data)
    raw = data.encode()
    size = len(raw)
    values: dict[str, Any] = {"log_bytes": AttemptRow.log_bytes + size}
    if a.log_bytes + size > cap:
        kept = raw[: max(0, cap - a.log_bytes)].decode(
            errors="ignore"
        )  # the cap counts bytes, not characters
        data = kept + f"\n[unidesk] log truncated: this attempt's output passed {cap} bytes\n"
        values["log_truncated"] = True
    inserted = await session.execute(
        pg_insert(LogChunkRow)
        .values(
            task_id=a.task_id,
            attempt_no=a.attempt_no,
            seq=m.seq,
            stream=m.stream,
            data=data,
            # the source time of the chunk's first line (else: when the server stored it)
            ts=_source_time(m.ts) if m.ts > 0 else func.now(),
        )
        .on_conflict_do_nothing()
        .returning(LogChunkRow.seq)
    )
    if inserted.first() is not None:
        # The ORM update also brings ``a`` up to date (synchronize_session): adding ``size`` to
        # ``a.log_bytes`` again here counted every chunk twice and truncated at half the cap.
        await session.execute(
            update(AttemptRow)
            .where(AttemptRow.task_id == a.task_id, AttemptRow.attempt_no == a.attempt_no)
            .values(**values)
        )
    return m.seq


def _source_time(ts: float) -> datetime | Any:
    """The agent's source time as a timestamp; a value no clock gives falls back to now()."""
    try:
        return datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return func.now()


async def _data(session: AsyncSession, r: Report, a: AttemptRow, plugins: Any) -> int:
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


async def _masked(session: AsyncSession, r: Report, a: AttemptRow, masks: Any) -> Report:
    m = r.msg
    if isinstance(m, protocol.LogChunk) or (isinstance(m, protocol.AttemptState) and m.message):
        masker = await masks.masker(session, a.task_id)
        if masker is not None:
            if isinstance(m, protocol.LogChunk):
                m = msgspec.structs.replace(m, data=masker.mask(m.data))
            else:
                m = msgspec.structs.replace(m, message=masker.mask(m.message or ""))
            return msgspec.structs.replace(r, msg=m)
    return r


async def apply_report(
    session: AsyncSession,
    r: Report,
    *,
    log_cap: int,
    plugins: Any = None,
    locked: bool = False,
    masks: Any = None,
) -> Any:
    """Apply one report; ``locked`` when ``lock_batch`` already locked and loaded its rows.
    With ``masks`` (the secret store's ``AttemptMasks``), secret values in log text and state
    messages are masked again before anything is stored."""
    a = await _fenced_attempt(session, r, locked=locked)
    if a is None:
        return None
    if masks is not None:
        r = await _masked(session, r, a, masks)
    if isinstance(r.msg, protocol.Ack):
        return await _ack(session, r, a)
    if isinstance(r.msg, protocol.AttemptState):
        return await _state(session, r, a)
    if isinstance(r.msg, protocol.AttemptData):
        if not locked:
            return await _data(session, r, a, plugins)
        await flush_deferred(
            session
        )  # plugins write in a savepoint: keep its events out of the batch buffer
        try:
            return await _data(session, r, a, plugins)
        finally:
            defer_events(session)
    return await _log(session, r, a, log_cap)


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
            await lock_batch(session, ordered)
            defer_events(session)  # the batch's events go out in one INSERT and one NOTIFY
            leading = await apply_leading(session, ordered)
            results = [
                leading[i]
                if i in leading
                else await apply_report(
                    session,
                    r,
                    log_cap=self._log_cap,
                    plugins=self._plugins,
                    locked=True,
                    masks=self._masks,
                )
                for i, r in enumerate(ordered)
            ]
            await flush_deferred(session)
            return results

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
