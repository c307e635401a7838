"""Tables ``tasks`` and ``task_attempts``: projections of task events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Computed,
    DateTime,
    Float,
    ForeignKey,
    Identity,
    Index,
    Integer,
    String,
    Text,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base, CreatedAt, new_id
from unidesk.core.tasks.states import (
    ATTEMPT_ACTIVE_STATES,
    ATTEMPT_FINAL_STATES,
    TASK_ACTIVE_STATES,
    TASK_FINAL_STATES,
    AttemptStateName,
    TaskState,
)

__all__ = [
    "ACCOUNT_PATTERN",
    "ATTEMPT_ACTIVE_STATES",
    "ATTEMPT_FINAL_STATES",
    "GROUP_KEY_SQL",
    "TASK_ACTIVE_STATES",
    "TASK_FINAL_STATES",
    "AttemptRow",
    "TaskRow",
]

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
"""An account name: 1-64 letters, digits, ``.``, ``_``, ``:``, ``-``, not starting with a sign."""

GROUP_KEY_SQL = (
    "md5(coalesce(owner_id::text, '') || '|' || coalesce(account, '') || '|' || cpus::text"
    " || '|' || memory_mb::text || '|' || gpus::text || '|' || labels::text"
    " || '|' || coalesce(gpu_model, '') || '|' || coalesce(gpu_memory_mb, 0)::text"
    " || '|' || avoid_node_ids::text || '|' || coalesce(extra->>'runtime', '')"
    " || '|' || coalesce(extra->>'node_id', '') || '|' || coalesce(extra->>'kind', '')"
    " || '|' || coalesce(extra#>>'{params,op}', '')"
    " || '|' || coalesce(extra->'host_mounts', '[]'::jsonb)::text)"
)
"""The scheduler's pending group of a task: its owner, account and resource shape (everything
that decides where it may run). Tasks with one key rank and place alike."""


class TaskRow(CreatedAt, Base):
    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    seq: Mapped[int] = mapped_column(BigInteger, Identity(), nullable=False, unique=True)
    name: Mapped[str] = mapped_column(String(200), nullable=False, default="")
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[TaskState] = mapped_column(String(16), nullable=False, default="pending")
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    unschedulable_reason: Mapped[str | None] = mapped_column(Text)
    code_repo_url: Mapped[str] = mapped_column(Text, nullable=False)
    code_commit_id: Mapped[str] = mapped_column(String(64), nullable=False)
    env_repo_url: Mapped[str] = mapped_column(Text, nullable=False)
    env_commit_id: Mapped[str] = mapped_column(String(64), nullable=False)
    dockerfile_path: Mapped[str] = mapped_column(Text, nullable=False)
    command: Mapped[list[str]] = mapped_column(JSONB, nullable=False)
    env: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)
    cpus: Mapped[float] = mapped_column(Float, nullable=False, default=1.0)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False, default=512)
    gpus: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)
    gpu_model: Mapped[str | None] = mapped_column(String(128))
    """Shell-style pattern every assigned GPU's model must match (``A100*``); None: any."""
    gpu_memory_mb: Mapped[int | None] = mapped_column(Integer)
    """Least memory of each assigned GPU; None: any."""
    expected_duration_s: Mapped[int | None] = mapped_column(Integer)
    """The owner's estimate of the run time (reservations use it; else ``timeout_s``)."""
    timeout_s: Mapped[int] = mapped_column(Integer, nullable=False, default=3600)
    priority: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=3)
    retry_on_failure: Mapped[bool] = mapped_column(nullable=False, default=False)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
    attempt_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    pending_reason: Mapped[str | None] = mapped_column(String(32))
    """Why a pending task waits (see ``unidesk.core.scheduler.reasons``); None once assigned."""
    pending_detail: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    """Details of ``pending_reason`` (message, node, quota) for people."""
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    """A retried task is not scheduled before this instant (retry backoff)."""
    account: Mapped[str | None] = mapped_column(String(64))
    """The account (Slurm's word; e.g. a project) the task's use is charged to, for fair share,
    quotas and usage; None: the default account. Set at submit, never changed."""
    avoid_node_ids: Mapped[list[str]] = mapped_column(
        JSONB, nullable=False, default=list, server_default=text("'[]'::jsonb")
    )
    """Nodes that lost or failed an earlier attempt: used only when no other node could run it."""
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    group_key: Mapped[str] = mapped_column(Text, Computed(GROUP_KEY_SQL, persisted=True))
    """Kept by PostgreSQL from the columns in ``GROUP_KEY_SQL``: a pass groups pending tasks by
    it through ``ix_tasks_pending_groups`` instead of computing and sorting every shape."""

    __table_args__ = (
        Index(
            "ix_tasks_pending_queue", "priority", "seq", postgresql_where=text("state = 'pending'")
        ),
        Index(
            "ix_tasks_pending_groups",
            "group_key",
            text("priority DESC"),
            "seq",
            postgresql_include=["not_before"],
            postgresql_where=text("state = 'pending'"),
        ),
        Index(
            "ix_tasks_pending_fresh",
            "group_key",
            postgresql_where=text(
                "state = 'pending' AND (pending_reason IS NULL OR pending_reason = 'retry_backoff')"
            ),
        ),
        Index(
            "ix_tasks_backoff_unset",
            "id",
            postgresql_where=text(
                "state = 'pending' AND pending_reason = 'retry_backoff' AND not_before IS NULL"
            ),
        ),
        Index("ix_tasks_state_seq", "state", "seq"),
        CheckConstraint(f"account ~ '{ACCOUNT_PATTERN}'", name="account_name"),
    )


class AttemptRow(Base):
    __tablename__ = "task_attempts"

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    attempt_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("nodes.id", ondelete="SET NULL"), index=True
    )
    node_name: Mapped[str] = mapped_column(String(128), nullable=False, default="")
    state: Mapped[AttemptStateName] = mapped_column(String(16), nullable=False, default="assigned")
    stage: Mapped[str | None] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(32))
    message: Mapped[str | None] = mapped_column(Text)
    exit_code: Mapped[int | None] = mapped_column(Integer)
    gpu_indices: Mapped[list[int]] = mapped_column(JSONB, nullable=False, default=list)
    log_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False, default=0)
    log_truncated: Mapped[bool] = mapped_column(nullable=False, default=False)
    assigned_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    acked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
