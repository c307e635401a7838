"""Tables of the pipelines plugin: pipelines, their steps, and the tasks each step submitted.

A step's tasks are keyed by (pipeline, step, round, point): the unique key is what makes two
server instances unable to start one step twice (besides the pipeline row lock they take).
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, ForeignKeyConstraint, Integer, String, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.plugin_api import Base, CreatedAt, new_id
from unidesk.plugins.pipelines.schemas import PipelineState, StepState

__all__ = ["MODELS", "PipelineRow", "StepRow", "StepTask"]


class PipelineRow(CreatedAt, Base):
    """A submitted pipeline: its spec as given and where it stands."""

    __tablename__ = "pipelines_pipelines"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    state: Mapped[PipelineState] = mapped_column(
        String(16), nullable=False, default="pending", index=True
    )
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    owner_role: Mapped[str] = mapped_column(String(16), nullable=False, default="member")
    """The submitter's role, so later steps are submitted with the same rights (priority cap)."""
    spec: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False)
    rerun_of: Mapped[uuid.UUID | None] = mapped_column()
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class StepRow(Base):
    """One step of a pipeline; ``round`` counts its retries (its tasks of older rounds stay)."""

    __tablename__ = "pipelines_steps"

    pipeline_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("pipelines_pipelines.id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(63), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, nullable=False)
    state: Mapped[StepState] = mapped_column(String(16), nullable=False, default="waiting")
    round: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    reason: Mapped[str | None] = mapped_column(String(2000))
    inputs: Mapped[list[Any]] = mapped_column(JSONB, nullable=False, default=list)
    """The ``from`` inputs as resolved when the step became ready (artifact ids per source)."""
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class StepTask(CreatedAt, Base):
    """A task a step submitted: one per matrix point and round."""

    __tablename__ = "pipelines_step_tasks"
    __table_args__ = (
        ForeignKeyConstraint(
            ["pipeline_id", "step"],
            ["pipelines_steps.pipeline_id", "pipelines_steps.name"],
            ondelete="CASCADE",
        ),
    )

    pipeline_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    step: Mapped[str] = mapped_column(String(63), primary_key=True)
    round: Mapped[int] = mapped_column(Integer, primary_key=True)
    point: Mapped[int] = mapped_column(Integer, primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)


MODELS: list[type] = [PipelineRow, StepRow, StepTask]
