"""Tables of the research plugin: experiments, runs (tasks with parameters), metric points.

Metric points live in one narrow table keyed by (run, metric key, step): the primary key is
the index charts read by, and a per-(run, key) summary row keeps last/min/max without a scan.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.plugin_api import Base, CreatedAt, new_id

__all__ = ["MODELS", "DataBatch", "Experiment", "MetricKey", "MetricPoint", "MetricSummary", "Run"]


class Experiment(CreatedAt, Base):
    __tablename__ = "research_experiments"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class Run(CreatedAt, Base):
    """A task in an experiment, with the parameters it was given."""

    __tablename__ = "research_runs"

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), nullable=False, unique=True
    )
    experiment_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("research_experiments.id", ondelete="CASCADE"), nullable=False, index=True
    )
    params: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    sweep_id: Mapped[uuid.UUID | None] = mapped_column()
    rejected_points: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    last_rejection: Mapped[str | None] = mapped_column(Text)
    skipped_lines: Mapped[int] = mapped_column(
        Integer, nullable=False, default=0, server_default=text("0")
    )
    """Lines of the metrics file the agent skipped as malformed (not JSON objects, too long)."""
    skipped_samples: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    """The first few of those lines, as the agent named them (``SKIPPED_SAMPLES_KEPT`` at most)."""


class MetricKey(Base):
    __tablename__ = "research_metric_keys"

    id: Mapped[int] = mapped_column(Integer, Identity(), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, unique=True)


class MetricPoint(Base):
    """One value of one metric at one step of one run (a later report of the same step wins)."""

    __tablename__ = "research_metrics"

    run_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("research_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("research_metric_keys.id"), primary_key=True
    )
    step: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[float] = mapped_column(Float, nullable=False)
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class MetricSummary(Base):
    __tablename__ = "research_metric_summaries"

    run_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("research_runs.id", ondelete="CASCADE"), primary_key=True
    )
    key_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("research_metric_keys.id"), primary_key=True
    )
    points: Mapped[int] = mapped_column(BigInteger, nullable=False)
    first_step: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_step: Mapped[int] = mapped_column(BigInteger, nullable=False)
    last_value: Mapped[float] = mapped_column(Float, nullable=False)
    min_value: Mapped[float] = mapped_column(Float, nullable=False)
    max_value: Mapped[float] = mapped_column(Float, nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class DataBatch(Base):
    """Batches of attempt data already stored: a resent batch (same seq) is skipped."""

    __tablename__ = "research_data_batches"

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    attempt_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)


MODELS: list[type] = [Experiment, Run, MetricKey, MetricPoint, MetricSummary, DataBatch]
