"""HTTP handlers of the projects plugin under /api/projects."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta, timezone

import msgspec
from litestar import Controller, Response, delete, get, patch, post
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import Principal, attachment
from unidesk.plugins.projects import links
from unidesk.plugins.projects import schemas as s
from unidesk.plugins.projects.items import WorkItemService
from unidesk.plugins.projects.services import ProjectService

__all__ = ["ProjectController", "WorkItemController", "csv_file_name"]

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_file_name(name: str, now: datetime | None = None) -> str:
    """``<project>-items-YYYYMMDD-HHMM.csv`` stamped in Beijing time."""
    stamp = (now or datetime.now(UTC)).astimezone(BEIJING).strftime("%Y%m%d-%H%M")
    slug = (
        "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-")[:60] or "project"
    )
    return f"{slug}-items-{stamp}.csv"


def _cell(value: object) -> str:
    text = "" if value is None else str(value)
    return (
        "'" + text if text.startswith(_FORMULA_START) else text
    )  # no formulas when opened in a spreadsheet


class RunLink(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    task_id: uuid.UUID


class ProjectController(Controller):
    path = "/api/projects"
    tags = ("projects",)

    @get("/", operation_id="projects_list")
    async def list_projects(self, db: AsyncSession, principal: Principal) -> s.ProjectList:
        """Projects the caller is a member of (every project for an admin)."""
        return await ProjectService(db, principal).list()

    @post("/", operation_id="projects_create", status_code=201)
    async def create(
        self, data: s.ProjectCreate, db: AsyncSession, principal: Principal
    ) -> s.Project:
        """Create a project; the caller becomes its owner."""
        return await ProjectService(db, principal).create(data)

    @get("/{project_id:uuid}", operation_id="projects_get")
    async def get_project(
        self, project_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> s.ProjectDetail:
        """A project with its members, work items and dependencies."""
        return await WorkItemService(db, principal).project_detail(project_id)

    @patch("/{project_id:uuid}", operation_id="projects_update")
    async def update(
        self, project_id: uuid.UUID, data: s.ProjectUpdate, db: AsyncSession, principal: Principal
    ) -> s.Project:
        """Rename or describe a project."""
        return await ProjectService(db, principal).update(project_id, data)

    @delete("/{project_id:uuid}", operation_id="projects_delete", status_code=204)
    async def delete_project(
        self, project_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> None:
        """Delete a project with its work items (owners and admins)."""
        await ProjectService(db, principal).delete(project_id)

    @post("/{project_id:uuid}/members", operation_id="projects_add_member", status_code=201)
    async def add_member(
        self, project_id: uuid.UUID, data: s.MemberAdd, db: AsyncSession, principal: Principal
    ) -> list[s.Member]:
        """Add a user to the project (owners and admins)."""
        return await ProjectService(db, principal).add_member(project_id, data)

    @delete(
        "/{project_id:uuid}/members/{user_id:uuid}",
        operation_id="projects_remove_member",
        status_code=200,
    )
    async def remove_member(
        self, project_id: uuid.UUID, user_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> list[s.Member]:
        """Remove a member; the last owner stays."""
        return await ProjectService(db, principal).remove_member(project_id, user_id)

    @post("/{project_id:uuid}/items", operation_id="projects_create_item", status_code=201)
    async def create_item(
        self, project_id: uuid.UUID, data: s.WorkItemCreate, db: AsyncSession, principal: Principal
    ) -> s.WorkItem:
        """Create a work item; ``depends_on`` lists items (of this project) it starts after."""
        return await WorkItemService(db, principal).create(project_id, data)

    @get("/{project_id:uuid}/export.csv", operation_id="projects_export_csv", media_type="text/csv")
    async def export_csv(
        self, project_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> Response[str]:
        """The project's work items as CSV; the file name carries a Beijing-time stamp."""
        detail = await WorkItemService(db, principal).project_detail(project_id)
        titles = {i.id: i.title for i in detail.items}
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(
            [
                "id",
                "title",
                "status",
                "assignee",
                "start_date",
                "due_date",
                "estimate_hours",
                "milestone",
                "depends_on",
                "runs",
            ]
        )
        for i in detail.items:
            w.writerow(
                [
                    _cell(v)
                    for v in (
                        i.id,
                        i.title,
                        i.status,
                        i.assignee,
                        i.start_date,
                        i.due_date,
                        i.estimate_hours,
                        "yes" if i.milestone else "no",
                        "; ".join(titles.get(d, str(d)) for d in i.depends_on),
                        "; ".join(f"{k}={v}" for k, v in sorted(i.runs.items())),
                    )
                ]
            )
        name = csv_file_name(detail.project.name)
        return Response(
            out.getvalue(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": attachment(name)},
        )


class WorkItemController(Controller):
    path = "/api/projects/items"
    tags = ("projects",)

    @get("/{item_id:uuid}", operation_id="projects_get_item")
    async def get_item(
        self, item_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> s.WorkItemDetail:
        """A work item with its linked runs and dependents."""
        return await WorkItemService(db, principal).detail(item_id)

    @patch("/{item_id:uuid}", operation_id="projects_update_item")
    async def update_item(
        self, item_id: uuid.UUID, data: s.WorkItemUpdate, db: AsyncSession, principal: Principal
    ) -> s.WorkItem:
        """Change a work item (status, dates, assignee …); dates are Beijing calendar days."""
        return await WorkItemService(db, principal).update(item_id, data)

    @delete("/{item_id:uuid}", operation_id="projects_delete_item", status_code=204)
    async def delete_item(self, item_id: uuid.UUID, db: AsyncSession, principal: Principal) -> None:
        """Delete a work item and its dependency edges."""
        await WorkItemService(db, principal).delete(item_id)

    @post("/{item_id:uuid}/dependencies", operation_id="projects_add_dependency", status_code=201)
    async def add_dependency(
        self, item_id: uuid.UUID, data: s.DependencyCreate, db: AsyncSession, principal: Principal
    ) -> s.WorkItem:
        """Make this item start after ``predecessor_id`` finishes; cycles are refused."""
        return await WorkItemService(db, principal).add_dependency(item_id, data)

    @delete(
        "/{item_id:uuid}/dependencies/{predecessor_id:uuid}",
        operation_id="projects_remove_dependency",
        status_code=200,
    )
    async def remove_dependency(
        self, item_id: uuid.UUID, predecessor_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> s.WorkItem:
        """Drop a dependency."""
        return await WorkItemService(db, principal).remove_dependency(item_id, predecessor_id)

    @post("/{item_id:uuid}/runs", operation_id="projects_link_run", status_code=201)
    async def link_run(
        self, item_id: uuid.UUID, data: RunLink, db: AsyncSession, principal: Principal
    ) -> s.WorkItemDetail:
        """Link an existing task to this work item."""
        await links.link_existing(db, principal, item_id, data.task_id)
        return await WorkItemService(db, principal).detail(item_id)

    @delete(
        "/{item_id:uuid}/runs/{task_id:uuid}", operation_id="projects_unlink_run", status_code=200
    )
    async def unlink_run(
        self, item_id: uuid.UUID, task_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> s.WorkItemDetail:
        """Unlink a task from this work item."""
        await links.unlink(db, principal, item_id, task_id)
        return await WorkItemService(db, principal).detail(item_id)
