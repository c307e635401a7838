"""Public shapes of pipelines: PipelineCreate (input), Pipeline and PipelineSummary (output)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal, get_args

import msgspec

__all__ = [
    "MAX_STEPS",
    "PIPELINE_STATES",
    "STEP_NAME_PATTERN",
    "STEP_STATES",
    "WHEN",
    "Pipeline",
    "PipelineCreate",
    "PipelinePage",
    "PipelineState",
    "PipelineSummary",
    "PointOut",
    "RerunCreate",
    "StepInputOut",
    "StepOut",
    "StepOutputOut",
    "StepSpec",
    "StepState",
    "TraceOut",
    "When",
]

MAX_STEPS = 100
STEP_NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
When = Literal["on_success", "on_failure", "always"]
WHEN: tuple[When, ...] = get_args(When)
PipelineState = Literal["pending", "running", "succeeded", "failed", "cancelled"]
PIPELINE_STATES: tuple[PipelineState, ...] = get_args(PipelineState)
StepState = Literal["waiting", "ready", "running", "succeeded", "failed", "skipped", "cancelled"]
STEP_STATES: tuple[StepState, ...] = get_args(StepState)
Name = Annotated[str, msgspec.Meta(max_length=200)]
Commit = Annotated[
    str,
    msgspec.Meta(
        pattern=r"^([0-9a-f]{40}|[0-9a-f]{64})$", description="Full 40- or 64-hex commit id"
    ),
]


class StepSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One step: a task spec (merged over the pipeline's ``defaults``), what it waits for and
    when it runs. Names, conditions and the task are checked at submit, every error listed."""

    name: Name
    task: dict[str, Any]
    """Any TaskCreate field; ``inputs`` may also hold ``{"from": "<step>/<output path>"}``;
    ``{{ matrix.<key> }}`` in command, env values and name is replaced per matrix point."""
    depends_on: Annotated[list[Name], msgspec.Meta(max_length=MAX_STEPS)] = []
    when: Annotated[str, msgspec.Meta(max_length=64)] = "on_success"
    """on_success (default) | on_failure | always."""
    matrix: Annotated[dict[str, list[Any]], msgspec.Meta(max_length=16)] | None = None
    """Parameter grid: one task per combination (fan-out)."""


class PipelineCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """A named DAG of steps (JSON, or the same document as YAML)."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    steps: Annotated[list[StepSpec], msgspec.Meta(min_length=1, max_length=MAX_STEPS)]
    defaults: dict[str, Any] = {}
    """TaskCreate fields every step starts from (pinned repos and commits, resources, env…)."""


class RerunCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Run the pipeline again, at the same commits or new ones (set in its defaults)."""

    code_commit_id: Commit | None = None
    env_commit_id: Commit | None = None


class PointOut(msgspec.Struct, kw_only=True):
    index: int
    params: dict[str, Any]
    task_id: uuid.UUID | None
    task_state: str | None


class StepInputOut(msgspec.Struct, kw_only=True):
    from_step: str
    path: str
    artifact_ids: list[uuid.UUID]
    mount: str
    """Where the files appear in the container: ``/inputs/<step>/<point>/<file>``."""


class StepOutputOut(msgspec.Struct, kw_only=True):
    point: int
    path: str
    artifact_id: uuid.UUID
    size: int


class StepOut(msgspec.Struct, kw_only=True):
    name: str
    state: StepState
    depends_on: list[str]
    when: When
    matrix: dict[str, list[Any]] | None
    points: list[PointOut]
    inputs: list[StepInputOut]
    outputs: list[StepOutputOut]
    round: int
    """How many times the step was retried."""
    reason: str | None
    """Why a step failed or was skipped, in words."""


class PipelineSummary(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    state: PipelineState
    owner_id: uuid.UUID | None
    owner: str | None
    created_at: datetime
    finished_at: datetime | None
    step_counts: dict[StepState, int]
    rerun_of: uuid.UUID | None = None


class Pipeline(PipelineSummary, kw_only=True):
    steps: list[StepOut]
    spec: dict[str, Any]
    allowed_actions: list[str] = []
    """What the caller may do (``cancel``, ``retry``, ``rerun``): owner or admin."""


class PipelinePage(msgspec.Struct, kw_only=True):
    items: list[PipelineSummary]
    next_cursor: str | None


class TraceOut(msgspec.Struct, kw_only=True):
    items: list[Any]
