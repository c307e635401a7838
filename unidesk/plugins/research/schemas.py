"""Public shapes of the research plugin: experiments, runs, metrics, sweeps."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

import msgspec

from unidesk.core.plugin_api import TaskCreate

__all__ = [
    "METRIC_NAME_PATTERN",
    "PARAM_NAME_PATTERN",
    "Experiment",
    "ExperimentCreate",
    "ExperimentDetail",
    "ExperimentList",
    "MetricBatch",
    "MetricIn",
    "MetricSummary",
    "ParamValue",
    "RunOut",
    "Series",
    "SeriesPage",
    "SeriesPoint",
    "SweepCreate",
    "SweepResult",
]

PARAM_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
METRIC_NAME_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_./:-]{0,199}$"
ParamName = Annotated[str, msgspec.Meta(pattern=PARAM_NAME_PATTERN)]
ParamValue = str | int | float | bool


class ExperimentCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Annotated[str, msgspec.Meta(max_length=20000)] = ""


class Experiment(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    description: str
    owner_id: uuid.UUID | None
    created_at: datetime
    run_count: int = 0


class ExperimentList(msgspec.Struct, kw_only=True):
    items: list[Experiment]


class MetricIn(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One point: ``value`` of metric ``name`` at ``step`` (``time`` defaults to when it
    arrives)."""

    name: Annotated[str, msgspec.Meta(pattern=METRIC_NAME_PATTERN)]
    step: Annotated[int, msgspec.Meta(ge=0, le=2**62)]
    value: float
    time: datetime | None = None


class MetricBatch(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    items: Annotated[list[MetricIn], msgspec.Meta(min_length=1, max_length=10000)]


class MetricSummary(msgspec.Struct, kw_only=True):
    points: int
    first_step: int
    last_step: int
    last: float
    min: float
    max: float


class RunOut(msgspec.Struct, kw_only=True):
    task_id: uuid.UUID
    name: str
    state: str
    params: dict[str, Any]
    sweep_id: uuid.UUID | None
    created_at: datetime
    finished_at: datetime | None
    metrics: dict[str, MetricSummary]
    rejected_points: int
    last_rejection: str | None
    skipped_lines: int = 0
    """Lines of the metrics file the agent skipped as malformed (not JSON objects, too long)."""
    skipped_samples: list[str] = []
    """The first few of them, as ``"line 7: not JSON (…): <text>"``."""


class ExperimentDetail(msgspec.Struct, kw_only=True):
    experiment: Experiment
    runs: list[RunOut]
    metric_names: list[str]
    param_names: list[str]


class SweepCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One task per point of the grid (the cartesian product of ``grid``'s value lists).

    Each task gets the point as env vars ``PARAM_<NAME>`` and as JSON in ``UNIDESK_PARAMS``."""

    task: TaskCreate
    grid: Annotated[
        dict[ParamName, Annotated[list[ParamValue], msgspec.Meta(max_length=100000)]],
        msgspec.Meta(min_length=1, max_length=32),
    ]
    name_prefix: Annotated[str, msgspec.Meta(max_length=100)] = ""


class SweepResult(msgspec.Struct, kw_only=True):
    sweep_id: uuid.UUID
    task_ids: list[uuid.UUID]


class SeriesPoint(msgspec.Struct, kw_only=True, array_like=False):
    """A raw point (``min == max == avg == value``) or a bucket of steps ``step..step_end``."""

    step: int
    step_end: int
    avg: float
    min: float
    max: float
    last: float
    count: int


class Series(msgspec.Struct, kw_only=True):
    task_id: uuid.UUID
    name: str
    points: list[SeriesPoint]
    downsampled: bool


class SeriesPage(msgspec.Struct, kw_only=True):
    metric: str
    series: list[Series]
