"""The pipeline policy: turn step tasks' final states into step decisions and start ready steps.

``advance`` is the one place a pipeline moves. It locks the pipeline row (so two server
instances serialise on it), settles running steps whose tasks all ended, skips or starts
waiting steps whose dependencies are settled (submitting one task per matrix point with
``TaskSubmitter``, ``from`` inputs resolved to the producing tasks' artifacts), ends the
pipeline when every step has, and writes a ``step.*``/``pipeline.*`` event for each change, all
in the caller's transaction. It reads only durable state (step rows, task states, artifacts),
so the event listener, the startup reconcile and the HTTP actions can all call it at any time:
a call with nothing to do changes nothing.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import msgspec
import structlog
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import (
    ARTIFACTS,
    TASK_FINAL_STATES,
    TASKS,
    USERS,
    EventOut,
    NewEvent,
    PluginState,
    Principal,
    Settings,
    TaskCreate,
    TaskSubmitter,
    append,
)
from unidesk.errors import BadRequest, UnideskError
from unidesk.plugins.pipelines import models as m
from unidesk.plugins.pipelines.schemas import PIPELINE_STATES, StepState
from unidesk.plugins.pipelines.spec import (
    from_ref,
    input_mount,
    matrix_points,
    output_matches,
    task_body,
)

__all__ = [
    "PIPELINE_FINAL",
    "STEP_FINAL",
    "TASK_FINAL",
    "advance",
    "follow_task_events",
    "owner_principal",
    "pipeline_event",
    "reconcile",
    "step_outputs",
    "stuck_pipelines",
]

log = structlog.get_logger(__name__)

PIPELINE_FINAL = tuple(s for s in PIPELINE_STATES if s not in ("pending", "running"))
STEP_FINAL = ("succeeded", "failed", "skipped", "cancelled")
STEP_PENDING = ("waiting", "ready", "running")
TASK_FINAL = TASK_FINAL_STATES
ACTOR = "plugin:pipelines"
SWEEP_INTERVAL_S = 30.0
"""How often (at most, and only when events flow) the listener looks for stuck pipelines."""
_FINAL_KINDS = frozenset(f"task.{s}" for s in TASK_FINAL_STATES)


def _now() -> datetime:
    return datetime.now(UTC)


def pipeline_event(pipeline_id: uuid.UUID, kind: str, actor: str, **payload: Any) -> NewEvent:
    """An event about a pipeline (every ``pipeline.*`` and ``step.*`` kind has the pipeline as
    subject, so one pipeline's page follows one subject)."""
    return NewEvent(
        kind=kind,
        subject_type="pipeline",
        subject_id=str(pipeline_id),
        actor=actor,
        payload=payload,
    )


async def owner_principal(session: AsyncSession, p: m.PipelineRow) -> Principal | None:
    """The pipeline's owner as a principal (later steps are submitted on their behalf)."""
    if p.owner_id is None:
        return None
    username = await session.scalar(select(USERS.c.username).where(USERS.c.id == p.owner_id))
    if username is None:
        return None
    return Principal(
        user_id=p.owner_id,
        username=username,
        role="admin" if p.owner_role == "admin" else "member",
        token_id=uuid.UUID(int=0),
    )


async def step_outputs(
    session: AsyncSession, task_points: dict[uuid.UUID, int]
) -> list[tuple[int, str, uuid.UUID, int]]:
    """Ready output artifacts of these tasks: ``(point, path, artifact id, size)``, the latest
    attempt's when several attempts uploaded the same path."""
    if not task_points:
        return []
    rows = (
        await session.execute(
            select(
                ARTIFACTS.c.id,
                ARTIFACTS.c.name,
                ARTIFACTS.c.size,
                ARTIFACTS.c.task_id,
                ARTIFACTS.c.attempt_no,
            )
            .where(ARTIFACTS.c.task_id.in_(list(task_points)), ARTIFACTS.c.state == "ready")
            .order_by(ARTIFACTS.c.attempt_no, ARTIFACTS.c.name)
        )
    ).all()
    latest: dict[tuple[uuid.UUID, str], tuple[int, str, uuid.UUID, int]] = {}
    for aid, name, size, task_id, _attempt in rows:
        parts = name.split("/", 3)
        if len(parts) != 4 or parts[0] != "tasks":
            continue
        latest[(task_id, parts[3])] = (task_points[task_id], parts[3], aid, size)
    return sorted(latest.values(), key=lambda o: (o[0], o[1]))


def _decide(when: str, dep_states: list[str]) -> str | None:
    """``ready``, ``skip`` or None (wait) for a waiting step whose dependencies are in
    ``dep_states``."""
    if any(s in STEP_PENDING for s in dep_states):
        return None
    if when == "on_failure":
        return "ready" if any(s == "failed" for s in dep_states) else "skip"
    if when == "always":
        return "ready"
    return "ready" if all(s == "succeeded" for s in dep_states) else "skip"


class _Advance:
    def __init__(
        self,
        session: AsyncSession,
        p: m.PipelineRow,
        settings: Settings,
        plugins: Any,
        actor: str,
        strict: bool,
    ) -> None:
        self.s = session
        self.p = p
        self.settings = settings
        self.plugins = plugins
        self.actor = actor
        self.strict = strict
        self.events: list[NewEvent] = []
        self.spec_steps = {st["name"]: st for st in p.spec["steps"]}

    def event(self, kind: str, **payload: Any) -> None:
        self.events.append(pipeline_event(self.p.id, kind, self.actor, **payload))

    async def _resolve_inputs(
        self, step: dict[str, Any], tasks_by_step: dict[str, dict[uuid.UUID, int]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The task inputs for the step's ``from`` references and their record for the API."""
        task_inputs: list[dict[str, Any]] = []
        record: list[dict[str, Any]] = []
        for item in step["task"].get("inputs") or []:
            ref = from_ref(item)
            if ref is None:
                continue
            src, path = ref
            found = [
                o
                for o in await step_outputs(self.s, tasks_by_step.get(src, {}))
                if output_matches(path, o[1])
            ]
            if not found and step.get("when", "on_success") == "on_success":
                raise BadRequest(
                    f"inputs: step {src!r} produced no output {path!r}", field="inputs"
                )
            for point, rel, aid, _size in found:
                task_inputs.append({"artifact": str(aid), "path": input_mount(src, point, rel)})
            record.append(
                {
                    "from_step": src,
                    "path": path,
                    "artifact_ids": [str(o[2]) for o in found],
                    "mount": f"/inputs/{src}/<point>/{path}",
                }
            )
        return task_inputs, record

    async def _start(
        self, st: m.StepRow, tasks_by_step: dict[str, dict[uuid.UUID, int]]
    ) -> list[uuid.UUID]:
        """Submit the step's tasks (one per matrix point); raises UnideskError if refused."""
        step = self.spec_steps[st.name]
        principal = await owner_principal(self.s, self.p)
        if principal is None:
            raise BadRequest("the pipeline's owner no longer exists", field="owner")
        task_inputs, record = await self._resolve_inputs(step, tasks_by_step)
        points = matrix_points(step.get("matrix"))
        bodies: list[TaskCreate] = []
        for params in points:
            body = task_body(self.p.spec, step, params, task_inputs)
            if isinstance(body.get("env", {}), dict):
                body["env"] = {
                    **body.get("env", {}),
                    "UNIDESK_PIPELINE_ID": str(self.p.id),
                    "UNIDESK_STEP": st.name,
                    "UNIDESK_STEP_ROUND": str(st.round),
                }
            try:
                bodies.append(msgspec.convert(body, TaskCreate))
            except msgspec.ValidationError as exc:
                raise BadRequest(f"task: {exc}", field="task") from None
        async with self.s.begin_nested():
            ids = await TaskSubmitter(self.s, self.settings, self.plugins).submit_many(
                bodies, principal
            )
            for i, (params, task_id) in enumerate(zip(points, ids, strict=True)):
                self.s.add(
                    m.StepTask(
                        pipeline_id=self.p.id,
                        step=st.name,
                        round=st.round,
                        point=i,
                        task_id=task_id,
                        params=params,
                    )
                )
            await self.s.flush()
        st.inputs = record
        return ids

    async def run(self) -> None:
        p = self.p
        steps = {
            st.name: st
            for st in (
                await self.s.scalars(
                    select(m.StepRow)
                    .where(m.StepRow.pipeline_id == p.id)
                    .order_by(m.StepRow.position)
                    .with_for_update()
                )
            ).all()
        }
        rows = (
            await self.s.execute(
                select(m.StepTask.step, m.StepTask.round, m.StepTask.point, m.StepTask.task_id)
                .add_columns(TASKS.c.state)
                .join(TASKS, TASKS.c.id == m.StepTask.task_id)
                .where(m.StepTask.pipeline_id == p.id)
            )
        ).all()
        task_states: dict[str, list[str]] = defaultdict(list)
        tasks_by_step: dict[str, dict[uuid.UUID, int]] = defaultdict(dict)
        for step, rnd, point, task_id, state in rows:
            if step in steps and rnd == steps[step].round:
                task_states[step].append(state)
                tasks_by_step[step][task_id] = point
        changed = True
        while changed:
            changed = False
            for st in steps.values():
                if st.state == "running":
                    states = task_states[st.name]
                    if not states or not all(t in TASK_FINAL for t in states):
                        continue
                    bad = [t for t in states if t != "succeeded"]
                    new: StepState
                    if not bad:
                        new, reason = "succeeded", None
                    else:
                        new = "cancelled" if all(t == "cancelled" for t in bad) else "failed"
                        how = ", ".join(
                            f"{n} {t}" for t in ("failed", "cancelled") if (n := bad.count(t))
                        )
                        reason = f"{len(bad)} of {len(states)} tasks did not succeed: {how}"
                    self._move(st, new, reason, tasks=len(states), not_succeeded=len(bad))
                    changed = True
                elif st.state in ("waiting", "ready"):
                    step = self.spec_steps[st.name]
                    deps = list(step.get("depends_on") or [])
                    decision = _decide(
                        step.get("when", "on_success"), [steps[d].state for d in deps]
                    )
                    if decision is None:
                        continue
                    changed = True
                    if decision == "skip":
                        why = ", ".join(f"{d} {steps[d].state}" for d in deps)
                        self._move(
                            st, "skipped", f"{step.get('when', 'on_success')}: {why}", why=why
                        )
                        continue
                    if st.state == "waiting":
                        self._move(st, "ready", None)
                    try:
                        ids = await self._start(st, tasks_by_step)
                    except UnideskError as exc:
                        if exc.status >= 500:
                            raise
                        if self.strict:
                            raise BadRequest(
                                f"steps.{st.name}: {exc.detail}",
                                errors=[{"path": f"steps.{st.name}.task", "detail": exc.detail}],
                            ) from None
                        self._move(st, "failed", exc.detail[:2000], error=exc.detail[:2000])
                        continue
                    task_states[st.name] = ["pending"] * len(ids)
                    tasks_by_step[st.name] = {t: i for i, t in enumerate(ids)}
                    self._move(st, "running", None, task_ids=[str(t) for t in ids])
        if p.state == "pending" and any(st.state != "waiting" for st in steps.values()):
            p.state = "running"
            p.updated_at = _now()
        if all(st.state in STEP_FINAL for st in steps.values()):
            failed = [st.name for st in steps.values() if st.state in ("failed", "cancelled")]
            p.state = "failed" if failed else "succeeded"
            p.finished_at = _now()
            p.updated_at = _now()
            self.event(f"pipeline.{p.state}", failed_steps=failed)
        if self.events:
            for e in self.events:
                await append(self.s, e)

    def _move(self, st: m.StepRow, to: StepState, reason: str | None, **payload: Any) -> None:
        kind = {"running": "started"}.get(to, to)
        st.state = to
        st.reason = reason
        st.updated_at = _now()
        self.event(
            f"step.{kind}",
            step=st.name,
            round=st.round,
            **({"reason": reason} if reason else {}),
            **payload,
        )


async def advance(
    session: AsyncSession,
    pipeline_id: uuid.UUID,
    settings: Settings,
    plugins: Any,
    *,
    actor: str = ACTOR,
    strict: bool = False,
) -> bool:
    """Move the pipeline as far as its durable state allows, in the caller's transaction (the
    caller commits). ``strict``: a step whose tasks are refused raises 400 instead of failing
    (at submit, so a pipeline whose first steps cannot start is refused whole). Returns False
    when the pipeline is missing or already final."""
    p = await session.scalar(
        select(m.PipelineRow).where(m.PipelineRow.id == pipeline_id).with_for_update()
    )
    if p is None or p.state in PIPELINE_FINAL:
        return False
    await _Advance(session, p, settings, plugins, actor, strict).run()
    return True


async def _advance_each(state: PluginState, pipeline_ids: list[uuid.UUID]) -> None:
    for pid in pipeline_ids:
        async with state.sessions() as session:
            try:
                await advance(session, pid, state.settings, state.plugins)
                await session.commit()
            except Exception:
                await session.rollback()
                log.exception("pipeline advance failed", pipeline_id=str(pid))


async def stuck_pipelines(session: AsyncSession) -> list[uuid.UUID]:
    """Pipelines with a running step whose tasks (current round) have all ended: what a missed
    or failed listener call leaves behind."""
    rows = await session.execute(
        select(m.StepRow.pipeline_id)
        .join(
            m.StepTask,
            (m.StepTask.pipeline_id == m.StepRow.pipeline_id)
            & (m.StepTask.step == m.StepRow.name)
            & (m.StepTask.round == m.StepRow.round),
        )
        .join(TASKS, TASKS.c.id == m.StepTask.task_id)
        .where(m.StepRow.state == "running")
        .group_by(m.StepRow.pipeline_id, m.StepRow.name)
        .having(func.bool_and(TASKS.c.state.in_(TASK_FINAL)))
    )
    return sorted({r[0] for r in rows.all()})


_last_sweep = [0.0]
"""When this process last looked for stuck pipelines (``time.monotonic``)."""


async def follow_task_events(events: list[EventOut], state: PluginState) -> None:
    """Event listener: a step's task ended, so its pipeline may move. At most every
    ``SWEEP_INTERVAL_S`` (when events flow) it also moves pipelines that a dropped or failed
    call left behind."""
    ids = {
        uuid.UUID(e.subject_id)
        for e in events
        if e.subject_type == "task" and e.kind in _FINAL_KINDS
    }
    sweep = time.monotonic() - _last_sweep[0] >= SWEEP_INTERVAL_S
    if not ids and not sweep:
        return
    pids: set[uuid.UUID] = set()
    async with state.sessions() as session:
        if ids:
            pids.update(
                (
                    await session.scalars(
                        select(m.StepTask.pipeline_id)
                        .where(m.StepTask.task_id.in_(sorted(ids)))
                        .distinct()
                    )
                ).all()
            )
        if sweep:
            _last_sweep[0] = time.monotonic()
            pids.update(await stuck_pipelines(session))
    await _advance_each(state, sorted(pids))


async def reconcile(state: PluginState) -> None:
    """At startup: move every unfinished pipeline (its step tasks may have ended while no
    server listened), and cancel tasks still running in a cancelled pipeline (a crash between
    the cancel and the tasks' cancels)."""
    async with state.sessions() as session:
        pids = (
            await session.scalars(
                select(m.PipelineRow.id)
                .where(m.PipelineRow.state.in_(("pending", "running")))
                .order_by(m.PipelineRow.created_at)
            )
        ).all()
        stray = (
            await session.execute(
                select(m.PipelineRow, m.StepTask.task_id)
                .join(m.StepTask, m.StepTask.pipeline_id == m.PipelineRow.id)
                .join(TASKS, TASKS.c.id == m.StepTask.task_id)
                .where(m.PipelineRow.state == "cancelled", TASKS.c.state.not_in(TASK_FINAL))
            )
        ).all()
        for p, task_id in stray:
            principal = await owner_principal(session, p)
            if principal is not None:
                await TaskSubmitter(session, state.settings, state.plugins).cancel(
                    task_id, principal
                )
        await session.commit()
    await _advance_each(state, list(pids))
    if pids or stray:
        log.info("pipelines reconciled", pipelines=len(pids), cancelled_tasks=len(stray))
