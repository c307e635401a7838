"""Experiments, their runs (tasks with parameters) and parameter sweeps."""

from __future__ import annotations

import builtins
import itertools
import json
import math
import uuid
from collections import defaultdict
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import (
    TASKS,
    NewEvent,
    Principal,
    Settings,
    TaskCreate,
    TaskSubmitter,
    append,
    require_owner_or_admin,
)
from unidesk.errors import BadRequest, NotFound
from unidesk.plugins.research import models as m
from unidesk.plugins.research import schemas as s
from unidesk.plugins.research.metrics import MAX_CHART_POINTS, series, store_points, validate_items

__all__ = ["EXTENSION", "ExperimentService", "experiment_event", "on_submit"]

EXTENSION = "research"
_PARAM = __import__("re").compile(s.PARAM_NAME_PATTERN)


def experiment_event(experiment_id: uuid.UUID, kind: str, actor: str, **payload: Any) -> NewEvent:
    return NewEvent(
        kind=kind,
        subject_type="experiment",
        subject_id=str(experiment_id),
        actor=actor,
        payload=payload,
    )


def _check_params(params: Any) -> dict[str, Any]:
    if not isinstance(params, dict) or len(params) > 64:
        raise BadRequest(
            "extensions.research.params: an object of at most 64 parameters",
            field="extensions.research.params",
        )
    for k, v in params.items():
        if not isinstance(k, str) or not _PARAM.match(k):
            raise BadRequest(
                f"extensions.research.params: bad parameter name {str(k)[:40]!r}",
                field="extensions.research.params",
            )
        if (
            not isinstance(v, (str, int, float, bool))
            or (isinstance(v, float) and not math.isfinite(v))
            or (isinstance(v, str) and len(v) > 1000)
        ):
            raise BadRequest(
                f"extensions.research.params.{k}: a string, a finite number or a boolean",
                field="extensions.research.params",
            )
    return dict(params)


async def on_submit(
    session: AsyncSession, task_id: uuid.UUID, extensions: dict[str, Any], principal: Principal
) -> None:
    """Task extension ``{"research": {"experiment_id": …, "params": {…}}}``: the task becomes a
    run."""
    ext = extensions.get(EXTENSION)
    if ext is None:
        return
    if (
        not isinstance(ext, dict)
        or "experiment_id" not in ext
        or set(ext) - {"experiment_id", "params", "sweep_id"}
    ):
        raise BadRequest(
            'extensions.research: expected {"experiment_id": "<uuid>", "params": {…}}',
            field="extensions.research",
        )
    try:
        experiment_id = uuid.UUID(str(ext["experiment_id"]))
        sweep_id = uuid.UUID(str(ext["sweep_id"])) if ext.get("sweep_id") else None
    except ValueError:
        raise BadRequest(
            "extensions.research: experiment_id and sweep_id must be ids",
            field="extensions.research",
        ) from None
    if await session.get(m.Experiment, experiment_id) is None:
        raise BadRequest(
            f"extensions.research.experiment_id: experiment {experiment_id} does not exist",
            field="extensions.research",
        )
    params = _check_params(ext.get("params", {}))
    session.add(
        m.Run(task_id=task_id, experiment_id=experiment_id, params=params, sweep_id=sweep_id)
    )
    await append(
        session,
        experiment_event(
            experiment_id,
            "experiment.run_added",
            principal.actor,
            task_id=str(task_id),
            params=params,
        ),
    )


class ExperimentService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.s = session
        self.principal = principal

    async def _experiment(self, experiment_id: uuid.UUID) -> m.Experiment:
        row = await self.s.get(m.Experiment, experiment_id)
        if row is None:
            raise NotFound(
                f"experiment {experiment_id} not found", experiment_id=str(experiment_id)
            )
        return row

    @staticmethod
    def _out(e: m.Experiment, runs: int = 0) -> s.Experiment:
        return s.Experiment(
            id=e.id,
            name=e.name,
            description=e.description,
            owner_id=e.owner_id,
            created_at=e.created_at,
            run_count=runs,
        )

    async def create(self, data: s.ExperimentCreate) -> s.Experiment:
        row = m.Experiment(
            id=uuid.uuid4(),
            name=data.name,
            description=data.description,
            owner_id=self.principal.user_id,
        )
        self.s.add(row)
        await self.s.flush()
        await append(
            self.s,
            experiment_event(row.id, "experiment.created", self.principal.actor, name=data.name),
        )
        await self.s.commit()
        await self.s.refresh(row)
        return self._out(row)

    async def list(self) -> s.ExperimentList:
        counts = (
            select(m.Run.experiment_id, func.count().label("n"))
            .group_by(m.Run.experiment_id)
            .subquery()
        )
        rows = (
            await self.s.execute(
                select(m.Experiment, counts.c.n)
                .outerjoin(counts, counts.c.experiment_id == m.Experiment.id)
                .order_by(m.Experiment.created_at.desc())
            )
        ).all()
        return s.ExperimentList(items=[self._out(e, n or 0) for e, n in rows])

    async def delete(self, experiment_id: uuid.UUID) -> None:
        row = await self._experiment(experiment_id)
        require_owner_or_admin(
            self.principal,
            row.owner_id,
            kind="experiment",
            verb="delete",
            experiment_id=str(row.id),
        )
        await append(
            self.s,
            experiment_event(row.id, "experiment.deleted", self.principal.actor, name=row.name),
        )
        await self.s.delete(row)
        await self.s.commit()

    async def detail(self, experiment_id: uuid.UUID) -> s.ExperimentDetail:
        exp = await self._experiment(experiment_id)
        rows = (
            await self.s.execute(
                select(m.Run, TASKS.c.name, TASKS.c.state, TASKS.c.finished_at)
                .join(TASKS, TASKS.c.id == m.Run.task_id)
                .where(m.Run.experiment_id == experiment_id)
                .order_by(m.Run.id)
            )
        ).all()
        summaries: dict[int, dict[str, s.MetricSummary]] = defaultdict(dict)
        run_ids = [r.id for r, *_ in rows]
        if run_ids:
            for sm, name in (
                await self.s.execute(
                    select(m.MetricSummary, m.MetricKey.name)
                    .join(m.MetricKey, m.MetricKey.id == m.MetricSummary.key_id)
                    .where(m.MetricSummary.run_id.in_(run_ids))
                )
            ).all():
                summaries[sm.run_id][name] = s.MetricSummary(
                    points=sm.points,
                    first_step=sm.first_step,
                    last_step=sm.last_step,
                    last=sm.last_value,
                    min=sm.min_value,
                    max=sm.max_value,
                )
        runs = [
            s.RunOut(
                task_id=r.task_id,
                name=name,
                state=state,
                params=dict(r.params),
                sweep_id=r.sweep_id,
                created_at=r.created_at,
                finished_at=finished,
                metrics=summaries[r.id],
                rejected_points=r.rejected_points,
                last_rejection=r.last_rejection,
                skipped_lines=r.skipped_lines,
                skipped_samples=list(r.skipped_samples),
            )
            for r, name, state, finished in rows
        ]
        return s.ExperimentDetail(
            experiment=self._out(exp, len(runs)),
            runs=runs,
            metric_names=sorted({k for r in runs for k in r.metrics}),
            param_names=sorted({k for r in runs for k in r.params}),
        )

    async def metric_series(
        self, experiment_id: uuid.UUID, name: str, points: int, tasks: builtins.list[uuid.UUID]
    ) -> s.SeriesPage:
        await self._experiment(experiment_id)
        stmt = (
            select(m.Run.task_id, m.Run.id)
            .where(m.Run.experiment_id == experiment_id)
            .order_by(m.Run.id)
        )
        if tasks:
            stmt = stmt.where(m.Run.task_id.in_(tasks))
        runs = [(t, i) for t, i in (await self.s.execute(stmt)).all()]
        return await series(self.s, runs, name, min(points, MAX_CHART_POINTS))

    async def report_metrics(self, task_id: uuid.UUID, data: s.MetricBatch) -> int:
        run = await self.s.scalar(select(m.Run).where(m.Run.task_id == task_id).with_for_update())
        if run is None:
            raise NotFound(f"task {task_id} is not a run of any experiment", task_id=str(task_id))
        owner = await self.s.scalar(select(TASKS.c.owner_id).where(TASKS.c.id == task_id))
        require_owner_or_admin(
            self.principal, owner, kind="run", verb="report metrics of", task_id=str(task_id)
        )
        points = validate_items(data.items)
        await store_points(self.s, run.id, points)
        await self.s.commit()
        return len(points)

    async def sweep(
        self,
        experiment_id: uuid.UUID,
        data: s.SweepCreate,
        settings: Settings,
        plugins: Any,
        *,
        cap: int,
    ) -> s.SweepResult:
        """Submit one task per grid point; everything is checked before the first task is
        created."""
        exp = await self._experiment(experiment_id)
        names = list(data.grid)
        for n, values in data.grid.items():
            if not values:
                raise BadRequest(f"grid.{n}: give at least one value", field=f"grid.{n}")
            for v in values:
                if isinstance(v, float) and not math.isfinite(v):
                    raise BadRequest(f"grid.{n}: values must be finite", field=f"grid.{n}")
        count = math.prod(len(v) for v in data.grid.values())
        if count > cap:
            raise BadRequest(
                f"sweep: the grid has {count} points, over the cap of {cap} tasks per sweep "
                "(setting research_max_sweep_tasks); nothing was submitted",
                field="grid",
                points=count,
                cap=cap,
            )
        if EXTENSION in data.task.extensions:
            raise BadRequest(
                "task.extensions.research: set by the sweep itself", field="task.extensions"
            )
        if len(data.task.env) + len(names) + 1 > 256:
            raise BadRequest(
                "task.env: too many variables with the sweep's PARAM_* added (at most 256)",
                field="task.env",
            )
        tasks = TaskSubmitter(self.s, settings, plugins)
        tasks.validate(data.task)
        sweep_id = uuid.uuid4()
        prefix = data.name_prefix or exp.name
        bodies: list[TaskCreate] = []
        for point in itertools.product(*data.grid.values()):
            params = dict(zip(names, point, strict=False))
            env = {
                **data.task.env,
                "UNIDESK_PARAMS": json.dumps(params),
                **{
                    f"PARAM_{k.upper()}": v if isinstance(v, str) else json.dumps(v)
                    for k, v in params.items()
                },
            }
            label = " ".join(f"{k}={v}" for k, v in params.items())
            body = msgspec.structs.replace(
                data.task,
                env=env,
                name=f"{prefix} {label}"[:200],
                extensions={
                    **data.task.extensions,
                    EXTENSION: {
                        "experiment_id": str(experiment_id),
                        "params": params,
                        "sweep_id": str(sweep_id),
                    },
                },
            )
            bodies.append(body)
        # One transaction for the whole grid (the batch submit): all points or none.
        ids = await tasks.submit_many(bodies, self.principal)
        await append(
            self.s,
            experiment_event(
                experiment_id,
                "experiment.sweep_submitted",
                self.principal.actor,
                sweep_id=str(sweep_id),
                points=count,
                grid=dict(data.grid),
            ),
        )
        await self.s.commit()
        return s.SweepResult(sweep_id=sweep_id, task_ids=ids)
