"""Tables of the projects plugin: projects, members, work items, dependencies, task links."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    String,
    Text,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.plugin_api import Base, CreatedAt, new_id

__all__ = ["MODELS", "STATUSES", "Dependency", "Member", "Project", "TaskLink", "WorkItem"]

STATUSES = ("todo", "doing", "done")


class Project(CreatedAt, Base):
    __tablename__ = "projects_projects"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    owner_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


class Member(Base):
    __tablename__ = "projects_members"

    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects_projects.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(16), nullable=False, default="member")


class WorkItem(CreatedAt, Base):
    __tablename__ = "projects_work_items"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    project_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects_projects.id", ondelete="CASCADE"), nullable=False, index=True
    )
    title: Mapped[str] = mapped_column(String(300), nullable=False)
    description: Mapped[str] = mapped_column(Text, nullable=False, default="")
    status: Mapped[str] = mapped_column(String(8), nullable=False, default="todo")
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    start_date: Mapped[date | None] = mapped_column(Date)
    due_date: Mapped[date | None] = mapped_column(Date)
    estimate_hours: Mapped[float | None] = mapped_column(Float)
    milestone: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint("status IN ('todo', 'doing', 'done')", name="status"),
        CheckConstraint(
            "start_date IS NULL OR due_date IS NULL OR due_date >= start_date", name="dates"
        ),
    )


class Dependency(Base):
    """Finish-to-start: ``successor`` may start once ``predecessor`` is finished."""

    __tablename__ = "projects_dependencies"

    predecessor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects_work_items.id", ondelete="CASCADE"), primary_key=True
    )
    successor_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects_work_items.id", ondelete="CASCADE"), primary_key=True
    )

    __table_args__ = (
        CheckConstraint("predecessor_id <> successor_id", name="not_self"),
        Index("ix_projects_dependencies_successor", "successor_id"),
    )


class TaskLink(Base):
    """A compute task run for a work item; ``task_state`` follows the task's events."""

    __tablename__ = "projects_task_links"

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    work_item_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("projects_work_items.id", ondelete="CASCADE"), nullable=False, index=True
    )
    task_state: Mapped[str] = mapped_column(String(16), nullable=False, default="pending")
    linked_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )


MODELS: list[type] = [Project, Member, WorkItem, Dependency, TaskLink]
