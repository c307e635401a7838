"""Public shapes of the projects plugin: projects, members, work items, dependencies, runs."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Annotated, Literal

import msgspec

__all__ = [
    "Dependency",
    "DependencyCreate",
    "Member",
    "MemberAdd",
    "Project",
    "ProjectCreate",
    "ProjectDetail",
    "ProjectList",
    "ProjectUpdate",
    "Run",
    "Status",
    "WorkItem",
    "WorkItemCreate",
    "WorkItemDetail",
    "WorkItemUpdate",
]

Status = Literal["todo", "doing", "done"]
Title = Annotated[str, msgspec.Meta(min_length=1, max_length=300)]
Text = Annotated[str, msgspec.Meta(max_length=20000)]
Estimate = Annotated[float, msgspec.Meta(ge=0, le=100000)]


class ProjectCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    description: Text = ""


class ProjectUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=200)] | None = None
    description: Text | None = None


class Member(msgspec.Struct, kw_only=True):
    user_id: uuid.UUID
    username: str
    role: str


class MemberAdd(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    username: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    role: Literal["owner", "member"] = "member"


class Project(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    name: str
    description: str
    owner_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    item_count: int = 0
    done_count: int = 0


class ProjectList(msgspec.Struct, kw_only=True):
    items: list[Project]


class WorkItemCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Dates are calendar days in Beijing time (``YYYY-MM-DD``)."""

    title: Title
    description: Text = ""
    status: Status = "todo"
    assignee: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    start_date: date | None = None
    due_date: date | None = None
    estimate_hours: Estimate | None = None
    milestone: bool = False
    depends_on: Annotated[list[uuid.UUID], msgspec.Meta(max_length=200)] = []


class WorkItemUpdate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Only the fields present change; ``null`` clears an optional field."""

    title: Title | msgspec.UnsetType = msgspec.UNSET
    description: Text | msgspec.UnsetType = msgspec.UNSET
    status: Status | msgspec.UnsetType = msgspec.UNSET
    assignee: Annotated[str, msgspec.Meta(max_length=64)] | msgspec.UnsetType | None = msgspec.UNSET
    start_date: date | msgspec.UnsetType | None = msgspec.UNSET
    due_date: date | msgspec.UnsetType | None = msgspec.UNSET
    estimate_hours: Estimate | msgspec.UnsetType | None = msgspec.UNSET
    milestone: bool | msgspec.UnsetType = msgspec.UNSET


class Run(msgspec.Struct, kw_only=True):
    """A compute task linked to a work item, with its state as last reported."""

    task_id: uuid.UUID
    name: str
    state: str
    linked_at: datetime
    updated_at: datetime


class WorkItem(msgspec.Struct, kw_only=True):
    id: uuid.UUID
    project_id: uuid.UUID
    title: str
    description: str
    status: Status
    assignee: str | None
    start_date: date | None
    due_date: date | None
    estimate_hours: float | None
    milestone: bool
    depends_on: list[uuid.UUID]
    runs: dict[str, int]
    """Linked runs counted by task state."""
    created_at: datetime
    updated_at: datetime


class WorkItemDetail(msgspec.Struct, kw_only=True):
    item: WorkItem
    run_list: list[Run]
    dependents: list[uuid.UUID]


class DependencyCreate(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    predecessor_id: uuid.UUID


class Dependency(msgspec.Struct, kw_only=True):
    predecessor_id: uuid.UUID
    successor_id: uuid.UUID


class ProjectDetail(msgspec.Struct, kw_only=True):
    project: Project
    members: list[Member]
    items: list[WorkItem]
    dependencies: list[Dependency]
