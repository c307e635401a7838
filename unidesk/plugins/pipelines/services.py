"""Pipelines as the API sees them: submit (checked whole), list, read, trace, cancel, retry a
step, rerun."""

from __future__ import annotations

import base64
import builtins
import uuid
from collections import defaultdict
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import (
    TASKS,
    USERS,
    EventOut,
    Principal,
    Settings,
    TaskSubmitter,
    append,
    events_of,
    require_owner_or_admin,
)
from unidesk.errors import BadRequest, Conflict, NotFound
from unidesk.plugins.pipelines import models as m
from unidesk.plugins.pipelines import schemas as s
from unidesk.plugins.pipelines.engine import (
    PIPELINE_FINAL,
    TASK_FINAL,
    advance,
    pipeline_event,
    step_outputs,
)
from unidesk.plugins.pipelines.settings import PipelinesSettings
from unidesk.plugins.pipelines.spec import check, matrix_points

__all__ = ["PipelineService"]


def _encode_cursor(created_at: datetime, pid: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{pid}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        ts, pid = base64.urlsafe_b64decode(cursor.encode()).decode().split("|", 1)
        return datetime.fromisoformat(ts), uuid.UUID(pid)
    except (ValueError, UnicodeError):
        raise BadRequest("cursor: not a cursor this API returned", field="cursor") from None


def _named_accounts(data: s.PipelineCreate) -> builtins.list[str]:
    """The accounts the steps' tasks name themselves (a task with extensions is left to its
    submit: a plugin may vouch for its account)."""
    named = set()
    for step in data.steps:
        body = {**data.defaults, **step.task}
        if isinstance(body.get("account"), str) and not body.get("extensions"):
            named.add(body["account"])
    return sorted(named)


class PipelineService:
    def __init__(
        self,
        session: AsyncSession,
        principal: Principal,
        settings: Settings,
        plugins: Any,
        limits: PipelinesSettings,
    ) -> None:
        self.s = session
        self.principal = principal
        self.settings = settings
        self.plugins = plugins
        self.limits = limits

    async def _row(self, pipeline_id: uuid.UUID, *, lock: bool = False) -> m.PipelineRow:
        stmt = select(m.PipelineRow).where(m.PipelineRow.id == pipeline_id)
        if lock:
            stmt = stmt.with_for_update()
        row = await self.s.scalar(stmt)
        if row is None:
            raise NotFound(f"pipeline {pipeline_id} not found", pipeline_id=str(pipeline_id))
        return row

    def _require_owner(self, row: m.PipelineRow, verb: str) -> None:
        require_owner_or_admin(
            self.principal, row.owner_id, kind="pipeline", verb=verb, pipeline_id=str(row.id)
        )

    # ---- submit -------------------------------------------------------------------------

    async def create(
        self, data: s.PipelineCreate, *, rerun_of: m.PipelineRow | None = None
    ) -> s.Pipeline:
        """Check the whole spec (every error listed), then create the pipeline and start the
        steps that wait for nothing, in one transaction."""
        tasks = TaskSubmitter(self.s, self.settings, self.plugins)
        check(
            data,
            tasks.validate,
            max_points=self.limits.max_points_per_step,
            max_tasks=self.limits.max_tasks,
        )
        for account in _named_accounts(data):  # later steps would fail on them only then
            await tasks.check_account(account, self.principal)
        row = m.PipelineRow(
            id=uuid.uuid4(),
            name=data.name,
            state="pending",
            owner_id=self.principal.user_id,
            owner_role=self.principal.role,
            spec=msgspec.to_builtins(data),
            rerun_of=rerun_of.id if rerun_of else None,
        )
        self.s.add(row)
        await self.s.flush()
        for i, step in enumerate(data.steps):
            self.s.add(m.StepRow(pipeline_id=row.id, name=step.name, position=i, inputs=[]))
        await self.s.flush()
        await append(
            self.s,
            pipeline_event(
                row.id,
                "pipeline.submitted",
                self.principal.actor,
                name=data.name,
                steps=[st.name for st in data.steps],
                **({"rerun_of": str(rerun_of.id)} if rerun_of else {}),
            ),
        )
        if rerun_of is not None:
            await append(
                self.s,
                pipeline_event(
                    rerun_of.id, "pipeline.rerun", self.principal.actor, new_pipeline_id=str(row.id)
                ),
            )
        await advance(
            self.s, row.id, self.settings, self.plugins, actor=self.principal.actor, strict=True
        )
        await self.s.commit()
        return await self.get(row.id)

    # ---- read ---------------------------------------------------------------------------

    async def _summaries(
        self, rows: builtins.list[tuple[m.PipelineRow, str | None]]
    ) -> builtins.list[s.PipelineSummary]:
        counts: dict[uuid.UUID, dict[s.StepState, int]] = defaultdict(dict)
        if rows:
            for pid, state, n in (
                await self.s.execute(
                    select(m.StepRow.pipeline_id, m.StepRow.state, func.count())
                    .where(m.StepRow.pipeline_id.in_([p.id for p, _ in rows]))
                    .group_by(m.StepRow.pipeline_id, m.StepRow.state)
                )
            ).all():
                counts[pid][state] = n
        return [
            s.PipelineSummary(
                id=p.id,
                name=p.name,
                state=p.state,
                owner_id=p.owner_id,
                owner=owner,
                created_at=p.created_at,
                finished_at=p.finished_at,
                step_counts=counts[p.id],
                rerun_of=p.rerun_of,
            )
            for p, owner in rows
        ]

    async def list(self, limit: int, cursor: str | None, state: str | None) -> s.PipelinePage:
        if state is not None and state not in s.PIPELINE_STATES:
            raise BadRequest(f"state: one of {', '.join(s.PIPELINE_STATES)}", field="state")
        stmt = select(m.PipelineRow, USERS.c.username).outerjoin(
            USERS, USERS.c.id == m.PipelineRow.owner_id
        )
        if state is not None:
            stmt = stmt.where(m.PipelineRow.state == state)
        if cursor:
            ts, pid = _decode_cursor(cursor)
            stmt = stmt.where(
                or_(
                    m.PipelineRow.created_at < ts,
                    and_(m.PipelineRow.created_at == ts, m.PipelineRow.id < pid),
                )
            )
        rows = [
            (p, u)
            for p, u in (
                await self.s.execute(
                    stmt.order_by(m.PipelineRow.created_at.desc(), m.PipelineRow.id.desc()).limit(
                        limit + 1
                    )
                )
            ).all()
        ]
        more = len(rows) > limit
        rows = rows[:limit]
        items = await self._summaries(rows)
        return s.PipelinePage(
            items=items,
            next_cursor=_encode_cursor(rows[-1][0].created_at, rows[-1][0].id) if more else None,
        )

    async def get(self, pipeline_id: uuid.UUID) -> s.Pipeline:
        p = await self._row(pipeline_id)
        await self.s.refresh(p)
        owner = (
            await self.s.scalar(select(USERS.c.username).where(USERS.c.id == p.owner_id))
            if p.owner_id
            else None
        )
        (summary,) = await self._summaries([(p, owner)])
        steps = (
            await self.s.scalars(
                select(m.StepRow).where(m.StepRow.pipeline_id == p.id).order_by(m.StepRow.position)
            )
        ).all()
        rounds = {st.name: st.round for st in steps}
        tasks: dict[str, dict[int, tuple[uuid.UUID, str]]] = defaultdict(dict)
        task_points: dict[str, dict[uuid.UUID, int]] = defaultdict(dict)
        for step, rnd, point, task_id, state in (
            await self.s.execute(
                select(m.StepTask.step, m.StepTask.round, m.StepTask.point, m.StepTask.task_id)
                .add_columns(TASKS.c.state)
                .join(TASKS, TASKS.c.id == m.StepTask.task_id)
                .where(m.StepTask.pipeline_id == p.id)
            )
        ).all():
            if rnd == rounds.get(step):
                tasks[step][point] = (task_id, state)
                task_points[step][task_id] = point
        spec_steps = {st["name"]: st for st in p.spec["steps"]}
        out: builtins.list[s.StepOut] = []
        for st in steps:
            spec = spec_steps[st.name]
            points = [
                s.PointOut(
                    index=i,
                    params=params,
                    task_id=tasks[st.name][i][0] if i in tasks[st.name] else None,
                    task_state=tasks[st.name][i][1] if i in tasks[st.name] else None,
                )
                for i, params in enumerate(matrix_points(spec.get("matrix")))
            ]
            outputs = [
                s.StepOutputOut(point=pt, path=path, artifact_id=aid, size=size)
                for pt, path, aid, size in await step_outputs(self.s, task_points[st.name])
            ]
            out.append(
                s.StepOut(
                    name=st.name,
                    state=st.state,
                    depends_on=list(spec.get("depends_on") or []),
                    when=spec.get("when", "on_success"),
                    matrix=spec.get("matrix"),
                    points=points,
                    inputs=[msgspec.convert(i, s.StepInputOut) for i in st.inputs or []],
                    outputs=outputs,
                    round=st.round,
                    reason=st.reason,
                )
            )
        actions: builtins.list[str] = []
        if self.principal.is_admin or (p.owner_id and p.owner_id == self.principal.user_id):
            if p.state not in PIPELINE_FINAL:
                actions.append("cancel")
            if any(st.state in ("failed", "cancelled") for st in steps):
                actions.append("retry")
            actions.append("rerun")
        return s.Pipeline(
            **msgspec.structs.asdict(summary), steps=out, spec=p.spec, allowed_actions=actions
        )

    async def trace(self, pipeline_id: uuid.UUID, *, tasks: bool) -> builtins.list[EventOut]:
        """The pipeline's events; with ``tasks`` also every step task's (all rounds), by id."""
        await self._row(pipeline_id)
        events = await events_of(self.s, "pipeline", str(pipeline_id))
        if tasks:
            ids = (
                await self.s.scalars(
                    select(m.StepTask.task_id).where(m.StepTask.pipeline_id == pipeline_id)
                )
            ).all()
            if ids:
                events += await events_of(self.s, "task", [str(t) for t in ids])
                events.sort(key=lambda e: e.id)
        return events

    # ---- control ------------------------------------------------------------------------

    async def cancel(self, pipeline_id: uuid.UUID) -> s.Pipeline:
        """Cancel: running steps' tasks are cancelled, steps not started are skipped."""
        p = await self._row(pipeline_id, lock=True)
        self._require_owner(p, "cancel")
        if p.state in PIPELINE_FINAL:
            raise Conflict(f"pipeline is already {p.state}", pipeline_id=str(pipeline_id))
        steps = (
            await self.s.scalars(
                select(m.StepRow).where(m.StepRow.pipeline_id == p.id).with_for_update()
            )
        ).all()
        running = {st.name: st.round for st in steps if st.state == "running"}
        actor = self.principal.actor
        for st in steps:
            if st.state in ("waiting", "ready"):
                st.state, st.reason = "skipped", "pipeline cancelled"
                await append(
                    self.s,
                    pipeline_event(
                        p.id,
                        "step.skipped",
                        actor,
                        step=st.name,
                        round=st.round,
                        reason="pipeline cancelled",
                    ),
                )
            elif st.state == "running":
                st.state, st.reason = "cancelled", "pipeline cancelled"
                await append(
                    self.s,
                    pipeline_event(p.id, "step.cancelled", actor, step=st.name, round=st.round),
                )
        task_ids = [
            t
            for step, rnd, t in (
                await self.s.execute(
                    select(m.StepTask.step, m.StepTask.round, m.StepTask.task_id)
                    .join(TASKS, TASKS.c.id == m.StepTask.task_id)
                    .where(m.StepTask.pipeline_id == p.id, TASKS.c.state.not_in(TASK_FINAL))
                )
            ).all()
            if running.get(step) == rnd
        ]
        p.state = "cancelled"
        p.finished_at = p.updated_at = datetime.now(p.created_at.tzinfo)
        await append(
            self.s,
            pipeline_event(p.id, "pipeline.cancelled", actor, tasks=[str(t) for t in task_ids]),
        )
        await self.s.commit()
        # Each task's cancel is its own transaction (the task API's); a crash in between is
        # caught up at startup (reconcile cancels tasks left running in a cancelled pipeline).
        tasks = TaskSubmitter(self.s, self.settings, self.plugins)
        for t in task_ids:
            await tasks.cancel(t, self.principal)
        return await self.get(pipeline_id)

    async def retry(self, pipeline_id: uuid.UUID, step_name: str) -> s.Pipeline:
        """Run a failed or cancelled step again; the steps skipped because of it wait again;
        steps that succeeded keep their outputs."""
        p = await self._row(pipeline_id, lock=True)
        self._require_owner(p, "retry a step of")
        steps = {
            st.name: st
            for st in (
                await self.s.scalars(
                    select(m.StepRow).where(m.StepRow.pipeline_id == p.id).with_for_update()
                )
            ).all()
        }
        st = steps.get(step_name)
        if st is None:
            raise NotFound(f"pipeline {pipeline_id} has no step {step_name[:80]!r}")
        if st.state not in ("failed", "cancelled"):
            raise Conflict(
                f"step {step_name} is {st.state}; only a failed or cancelled step is retried",
                pipeline_id=str(pipeline_id),
            )
        children: dict[str, builtins.list[str]] = defaultdict(list)
        for spec in p.spec["steps"]:
            for d in spec.get("depends_on") or []:
                children[d].append(spec["name"])
        reset: builtins.list[str] = []
        todo = list(children[step_name])
        while todo:
            name = todo.pop()
            if name in reset or steps[name].state != "skipped":
                continue
            reset.append(name)
            todo.extend(children[name])
        st.round += 1
        st.state, st.reason, st.inputs = "waiting", None, []
        for name in reset:
            steps[name].state, steps[name].reason, steps[name].inputs = "waiting", None, []
        p.state = "running"
        p.finished_at = None
        p.updated_at = datetime.now(p.created_at.tzinfo)
        await append(
            self.s,
            pipeline_event(
                p.id,
                "step.retried",
                self.principal.actor,
                step=step_name,
                round=st.round,
                waiting_again=sorted(reset),
            ),
        )
        await self.s.flush()
        await advance(self.s, p.id, self.settings, self.plugins, actor=self.principal.actor)
        await self.s.commit()
        return await self.get(pipeline_id)

    async def rerun(self, pipeline_id: uuid.UUID, data: s.RerunCreate) -> s.Pipeline:
        """A new pipeline with the same spec, at the same or new commits."""
        old = await self._row(pipeline_id, lock=True)
        self._require_owner(old, "rerun")
        spec = dict(old.spec)
        defaults = dict(spec.get("defaults") or {})
        if data.code_commit_id:
            defaults["code_commit_id"] = data.code_commit_id
        if data.env_commit_id:
            defaults["env_commit_id"] = data.env_commit_id
        spec["defaults"] = defaults
        new = msgspec.convert(spec, s.PipelineCreate)
        if data.code_commit_id or data.env_commit_id:
            # a step that pins its own commit is moved too
            for step in new.steps:
                if data.code_commit_id and "code_commit_id" in step.task:
                    step.task["code_commit_id"] = data.code_commit_id
                if data.env_commit_id and "env_commit_id" in step.task:
                    step.task["env_commit_id"] = data.env_commit_id
        return await self.create(new, rerun_of=old)
