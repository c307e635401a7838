"""Work items and their finish-to-start dependencies (with cycle detection)."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from typing import Any

import msgspec
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import TASKS, USERS, Principal, append
from unidesk.errors import BadRequest, Conflict, NotFound
from unidesk.plugins.projects import models as m
from unidesk.plugins.projects import schemas as s
from unidesk.plugins.projects.services import ProjectService, item_event, project_out

__all__ = ["WorkItemService", "find_cycle"]


def find_cycle(
    edges: Iterable[tuple[uuid.UUID, uuid.UUID]], new: tuple[uuid.UUID, uuid.UUID]
) -> list[uuid.UUID] | None:
    """The path that adding ``new`` (predecessor, successor) would close into a cycle, or None."""
    succ: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
    for a, b in edges:
        succ[a].append(b)
    start, goal = new[1], new[0]
    parent: dict[uuid.UUID, uuid.UUID | None] = {start: None}
    stack = [start]
    while stack:
        node = stack.pop()
        if node == goal:
            path = [node]
            while parent[path[-1]] is not None:
                path.append(parent[path[-1]])  # type: ignore[arg-type]  # not None: checked above
            return [goal, *reversed(path)]
        for nxt in succ[node]:
            if nxt not in parent:
                parent[nxt] = node
                stack.append(nxt)
    return None


def _check_dates(start: date | None, due: date | None, milestone: bool) -> None:
    if start is not None and due is not None and due < start:
        raise BadRequest(f"due_date {due} is before start_date {start}", field="due_date")
    if milestone and due is None:
        raise BadRequest("a milestone needs a due_date", field="due_date")
    if milestone and start is not None and start != due:
        raise BadRequest(
            "a milestone is a single day: start_date must equal due_date (or be empty)",
            field="start_date",
        )


class WorkItemService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.s = session
        self.principal = principal
        self.projects = ProjectService(session, principal)

    async def _assignee_id(self, project_id: uuid.UUID, username: str | None) -> uuid.UUID | None:
        if not username:
            return None
        uid = await self.s.scalar(
            select(m.Member.user_id)
            .join(USERS, USERS.c.id == m.Member.user_id)
            .where(m.Member.project_id == project_id, USERS.c.username == username)
        )
        if uid is None:
            raise BadRequest(
                f"assignee: {username!r} is not a member of this project", field="assignee"
            )
        return uid

    async def _item(self, item_id: uuid.UUID, *, lock: bool = False) -> m.WorkItem:
        row = await self.s.get(m.WorkItem, item_id)
        if row is None:
            raise NotFound(f"work item {item_id} not found", work_item_id=str(item_id))
        await self.projects.project(
            row.project_id, lock=lock
        )  # access check (and serialise graph edits)
        if lock:
            row = await self.s.get(
                m.WorkItem, item_id, with_for_update=True, populate_existing=True
            )
            if row is None:  # deleted by a concurrent request since the first read
                raise NotFound(f"work item {item_id} not found", work_item_id=str(item_id))
        return row

    async def _edges(self, project_id: uuid.UUID) -> list[tuple[uuid.UUID, uuid.UUID]]:
        rows = await self.s.execute(
            select(m.Dependency.predecessor_id, m.Dependency.successor_id)
            .join(m.WorkItem, m.WorkItem.id == m.Dependency.successor_id)
            .where(m.WorkItem.project_id == project_id)
        )
        return [(a, b) for a, b in rows.all()]

    async def _add_dependency(
        self, item: m.WorkItem, predecessor_id: uuid.UUID, edges: list[tuple[uuid.UUID, uuid.UUID]]
    ) -> None:
        pred = await self.s.get(m.WorkItem, predecessor_id)
        if pred is None:
            raise BadRequest(
                f"depends_on: work item {predecessor_id} does not exist", field="depends_on"
            )
        if pred.project_id != item.project_id:
            raise BadRequest(
                f"depends_on: work item {predecessor_id} belongs to another project; dependencies "
                "stay inside one project",
                field="depends_on",
            )
        if pred.id == item.id:
            raise BadRequest("depends_on: a work item cannot depend on itself", field="depends_on")
        if (pred.id, item.id) in edges:
            raise Conflict(f"{item.id} already depends on {pred.id}", work_item_id=str(item.id))
        cycle = find_cycle(edges, (pred.id, item.id))
        if cycle is not None:
            titles = {
                r.id: r.title
                for r in (
                    await self.s.scalars(select(m.WorkItem).where(m.WorkItem.id.in_(cycle)))
                ).all()
            }
            raise BadRequest(
                "dependency cycle: "
                + " → ".join(repr(titles.get(i, str(i))) for i in [*cycle, cycle[0]]),
                field="depends_on",
            )
        self.s.add(m.Dependency(predecessor_id=pred.id, successor_id=item.id))
        edges.append((pred.id, item.id))
        await append(
            self.s,
            item_event(
                item.id,
                "work_item.dependency_added",
                self.principal.actor,
                predecessor_id=str(pred.id),
            ),
        )

    # -- API -----------------------------------------------------------------------------------

    async def create(self, project_id: uuid.UUID, data: s.WorkItemCreate) -> s.WorkItem:
        await self.projects.project(project_id, lock=True)
        start = data.due_date if data.milestone and data.start_date is None else data.start_date
        _check_dates(start, data.due_date, data.milestone)
        row = m.WorkItem(
            id=uuid.uuid4(),
            project_id=project_id,
            title=data.title,
            description=data.description,
            status=data.status,
            assignee_id=await self._assignee_id(project_id, data.assignee),
            start_date=start,
            due_date=data.due_date,
            estimate_hours=data.estimate_hours,
            milestone=data.milestone,
        )
        self.s.add(row)
        await self.s.flush()
        await append(
            self.s,
            item_event(
                row.id,
                "work_item.created",
                self.principal.actor,
                project_id=str(project_id),
                **_plain(msgspec.to_builtins(data)),
            ),
        )
        edges = await self._edges(project_id)
        for pred in dict.fromkeys(data.depends_on):
            await self._add_dependency(row, pred, edges)
        await self.s.commit()
        return await self.get_item(row.id)

    async def update(self, item_id: uuid.UUID, data: s.WorkItemUpdate) -> s.WorkItem:
        row = await self._item(item_id, lock=True)
        changes = {
            f: getattr(data, f)
            for f in data.__struct_fields__
            if getattr(data, f) is not msgspec.UNSET
        }
        if not changes:
            raise BadRequest("nothing to change")
        if "assignee" in changes:
            row.assignee_id = await self._assignee_id(row.project_id, changes["assignee"])
        milestone = changes.get("milestone", row.milestone)
        start = changes.get("start_date", row.start_date)
        due = changes.get("due_date", row.due_date)
        if milestone and start is None:
            start = due
        _check_dates(start, due, milestone)
        for f in ("title", "description", "status", "estimate_hours"):
            if f in changes:
                setattr(row, f, changes[f])
        row.milestone, row.start_date, row.due_date = milestone, start, due
        row.updated_at = func.now()
        await append(
            self.s,
            item_event(
                row.id,
                "work_item.updated",
                self.principal.actor,
                project_id=str(row.project_id),
                **_plain(msgspec.to_builtins(changes)),
            ),
        )
        await self.s.commit()
        return await self.get_item(item_id)

    async def delete(self, item_id: uuid.UUID) -> None:
        row = await self._item(item_id, lock=True)
        await append(
            self.s,
            item_event(
                row.id,
                "work_item.deleted",
                self.principal.actor,
                project_id=str(row.project_id),
                title=row.title,
            ),
        )
        await self.s.delete(row)
        await self.s.commit()

    async def add_dependency(self, item_id: uuid.UUID, data: s.DependencyCreate) -> s.WorkItem:
        row = await self._item(item_id, lock=True)
        await self._add_dependency(row, data.predecessor_id, await self._edges(row.project_id))
        await self.s.commit()
        return await self.get_item(item_id)

    async def remove_dependency(self, item_id: uuid.UUID, predecessor_id: uuid.UUID) -> s.WorkItem:
        row = await self._item(item_id, lock=True)
        dep = await self.s.get(m.Dependency, (predecessor_id, item_id))
        if dep is None:
            raise NotFound(f"{item_id} does not depend on {predecessor_id}")
        await self.s.delete(dep)
        await append(
            self.s,
            item_event(
                row.id,
                "work_item.dependency_removed",
                self.principal.actor,
                predecessor_id=str(predecessor_id),
            ),
        )
        await self.s.commit()
        return await self.get_item(item_id)

    # -- reads -----------------------------------------------------------------------------------

    async def _outs(self, rows: list[m.WorkItem]) -> list[s.WorkItem]:
        ids = [r.id for r in rows]
        if not ids:
            return []
        deps: dict[uuid.UUID, list[uuid.UUID]] = defaultdict(list)
        for a, b in (
            await self.s.execute(
                select(m.Dependency.predecessor_id, m.Dependency.successor_id).where(
                    m.Dependency.successor_id.in_(ids)
                )
            )
        ).all():
            deps[b].append(a)
        runs: dict[uuid.UUID, dict[str, int]] = defaultdict(dict)
        for wid, state, n in (
            await self.s.execute(
                select(m.TaskLink.work_item_id, m.TaskLink.task_state, func.count())
                .where(m.TaskLink.work_item_id.in_(ids))
                .group_by(m.TaskLink.work_item_id, m.TaskLink.task_state)
            )
        ).all():
            runs[wid][state] = n
        users = dict(
            (
                await self.s.execute(
                    select(USERS.c.id, USERS.c.username).where(
                        USERS.c.id.in_({r.assignee_id for r in rows if r.assignee_id})
                    )
                )
            ).all()
        )
        return [
            s.WorkItem(
                id=r.id,
                project_id=r.project_id,
                title=r.title,
                description=r.description,
                status=r.status,  # type: ignore[arg-type]  # the column holds only statuses
                assignee=users.get(r.assignee_id) if r.assignee_id else None,
                start_date=r.start_date,
                due_date=r.due_date,
                estimate_hours=r.estimate_hours,
                milestone=r.milestone,
                depends_on=sorted(deps[r.id]),
                runs=runs[r.id],
                created_at=r.created_at,
                updated_at=r.updated_at,
            )
            for r in rows
        ]

    async def get_item(self, item_id: uuid.UUID) -> s.WorkItem:
        row = await self.s.get(m.WorkItem, item_id, populate_existing=True)
        if row is None:
            raise NotFound(f"work item {item_id} not found", work_item_id=str(item_id))
        return (await self._outs([row]))[0]

    async def detail(self, item_id: uuid.UUID) -> s.WorkItemDetail:

        row = await self._item(item_id)
        links = (
            await self.s.execute(
                select(m.TaskLink, TASKS.c.name)
                .join(TASKS, TASKS.c.id == m.TaskLink.task_id)
                .where(m.TaskLink.work_item_id == item_id)
                .order_by(m.TaskLink.linked_at.desc())
            )
        ).all()
        dependents = (
            await self.s.scalars(
                select(m.Dependency.successor_id).where(m.Dependency.predecessor_id == item_id)
            )
        ).all()
        return s.WorkItemDetail(
            item=(await self._outs([row]))[0],
            dependents=sorted(dependents),
            run_list=[
                s.Run(
                    task_id=link.task_id,
                    name=name,
                    state=link.task_state,
                    linked_at=link.linked_at,
                    updated_at=link.updated_at,
                )
                for link, name in links
            ],
        )

    async def project_detail(self, project_id: uuid.UUID) -> s.ProjectDetail:
        project = await self.projects.project(project_id)
        rows = list(
            (
                await self.s.scalars(
                    select(m.WorkItem)
                    .where(m.WorkItem.project_id == project_id)
                    .order_by(m.WorkItem.start_date.asc().nulls_last(), m.WorkItem.created_at)
                )
            ).all()
        )
        items = await self._outs(rows)
        edges = await self._edges(project_id)
        return s.ProjectDetail(
            project=project_out(project, len(items), sum(1 for i in items if i.status == "done")),
            members=await self.projects.members(project_id),
            items=items,
            dependencies=[s.Dependency(predecessor_id=a, successor_id=b) for a, b in edges],
        )


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if k != "description"} | (
        {"description_changed": True} if "description" in values else {}
    )
