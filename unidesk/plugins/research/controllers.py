"""HTTP handlers of the research plugin under /api/research."""

from __future__ import annotations

import uuid
from typing import Annotated

from litestar import Controller, delete, get, post
from litestar.datastructures import State
from litestar.params import Parameter
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import Principal, Settings, plugin_settings
from unidesk.plugins.research import schemas as s
from unidesk.plugins.research.metrics import MAX_CHART_POINTS
from unidesk.plugins.research.services import ExperimentService
from unidesk.plugins.research.settings import ResearchSettings

__all__ = ["ExperimentController", "RunMetricsController"]


class ExperimentController(Controller):
    path = "/api/research/experiments"
    tags = ("research",)

    @get("/", operation_id="research_list_experiments")
    async def list_experiments(self, db: AsyncSession, principal: Principal) -> s.ExperimentList:
        """Experiments, newest first, with their run counts."""
        return await ExperimentService(db, principal).list()

    @post("/", operation_id="research_create_experiment", status_code=201)
    async def create(
        self, data: s.ExperimentCreate, db: AsyncSession, principal: Principal
    ) -> s.Experiment:
        """Create an experiment; tasks join it through the ``research`` task extension or a
        sweep."""
        return await ExperimentService(db, principal).create(data)

    @get("/{experiment_id:uuid}", operation_id="research_get_experiment")
    async def get_experiment(
        self, experiment_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> s.ExperimentDetail:
        """An experiment's runs with parameters, states and last/min/max of every metric."""
        return await ExperimentService(db, principal).detail(experiment_id)

    @delete("/{experiment_id:uuid}", operation_id="research_delete_experiment", status_code=204)
    async def delete_experiment(
        self, experiment_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> None:
        """Delete an experiment and its metrics (the tasks stay)."""
        await ExperimentService(db, principal).delete(experiment_id)

    @get("/{experiment_id:uuid}/metrics", operation_id="research_metric_series")
    async def metric_series(
        self,
        experiment_id: uuid.UUID,
        db: AsyncSession,
        principal: Principal,
        name: Annotated[str, Parameter(min_length=1, max_length=200)],
        points: Annotated[int, Parameter(ge=2, le=MAX_CHART_POINTS)] = 1000,
        task: Annotated[list[uuid.UUID] | None, Parameter(query="task")] = None,
    ) -> s.SeriesPage:
        """One metric across runs for a chart: at most ``points`` per run (downsampled by step)."""
        return await ExperimentService(db, principal).metric_series(
            experiment_id, name, points, task or []
        )

    @post("/{experiment_id:uuid}/sweeps", operation_id="research_submit_sweep", status_code=201)
    async def sweep(
        self,
        experiment_id: uuid.UUID,
        data: s.SweepCreate,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        state: State,
    ) -> s.SweepResult:
        """Submit one task per grid point (refused with 400 over ``research_max_sweep_tasks``)."""
        cap = plugin_settings(state, ResearchSettings).max_sweep_tasks
        return await ExperimentService(db, principal).sweep(
            experiment_id, data, settings, state.plugins, cap=cap
        )


class RunMetricsController(Controller):
    path = "/api/research/runs"
    tags = ("research",)

    @post("/{task_id:uuid}/metrics", operation_id="research_report_metrics", status_code=201)
    async def report(
        self, task_id: uuid.UUID, data: s.MetricBatch, db: AsyncSession, principal: Principal
    ) -> dict[str, int]:
        """Report points for a run over HTTP (runs inside containers write $UNIDESK_METRICS_FILE
        instead)."""
        return {"stored": await ExperimentService(db, principal).report_metrics(task_id, data)}
