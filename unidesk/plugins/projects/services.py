"""Projects and members: the only code touching the plugin's project tables from the API."""

from __future__ import annotations

import builtins
import uuid
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.plugin_api import USERS, NewEvent, Principal, append
from unidesk.errors import BadRequest, Conflict, Forbidden, NotFound
from unidesk.plugins.projects import models as m
from unidesk.plugins.projects import schemas as s

__all__ = ["ProjectService", "item_event", "project_event", "project_out"]


def project_event(project_id: uuid.UUID, kind: str, actor: str, **payload: Any) -> NewEvent:
    return NewEvent(
        kind=kind, subject_type="project", subject_id=str(project_id), actor=actor, payload=payload
    )


def item_event(item_id: uuid.UUID, kind: str, actor: str, **payload: Any) -> NewEvent:
    return NewEvent(
        kind=kind, subject_type="work_item", subject_id=str(item_id), actor=actor, payload=payload
    )


def project_out(p: m.Project, item_count: int = 0, done_count: int = 0) -> s.Project:
    return s.Project(
        id=p.id,
        name=p.name,
        description=p.description,
        owner_id=p.owner_id,
        created_at=p.created_at,
        updated_at=p.updated_at,
        item_count=item_count,
        done_count=done_count,
    )


class ProjectService:
    def __init__(self, session: AsyncSession, principal: Principal) -> None:
        self.s = session
        self.principal = principal

    async def project(self, project_id: uuid.UUID, *, lock: bool = False) -> m.Project:
        """The project, if the caller may see it (a member, or an admin)."""
        row = await self.s.get(m.Project, project_id, with_for_update=lock or None)
        if row is None:
            raise NotFound(f"project {project_id} not found", project_id=str(project_id))
        if not self.principal.is_admin:
            member = await self.s.get(m.Member, (project_id, self.principal.user_id))
            if member is None:
                raise Forbidden(
                    "only the project's members (or an admin) may see or change it",
                    project_id=str(project_id),
                )
        return row

    async def create(self, data: s.ProjectCreate) -> s.Project:
        row = m.Project(
            id=uuid.uuid4(),
            name=data.name,
            description=data.description,
            owner_id=self.principal.user_id,
        )
        self.s.add(row)
        await self.s.flush()
        self.s.add(m.Member(project_id=row.id, user_id=self.principal.user_id, role="owner"))
        await append(
            self.s, project_event(row.id, "project.created", self.principal.actor, name=data.name)
        )
        await self.s.commit()
        await self.s.refresh(row)
        return project_out(row)

    async def list(self) -> s.ProjectList:
        counts = (
            select(
                m.WorkItem.project_id,
                func.count().label("n"),
                func.count(case((m.WorkItem.status == "done", 1))).label("done"),
            )
            .group_by(m.WorkItem.project_id)
            .subquery()
        )
        stmt = select(m.Project, counts.c.n, counts.c.done).outerjoin(
            counts, counts.c.project_id == m.Project.id
        )
        if not self.principal.is_admin:
            stmt = stmt.where(
                m.Project.id.in_(
                    select(m.Member.project_id).where(m.Member.user_id == self.principal.user_id)
                )
            )
        rows = (await self.s.execute(stmt.order_by(m.Project.created_at.desc()))).all()
        return s.ProjectList(items=[project_out(p, n or 0, d or 0) for p, n, d in rows])

    async def update(self, project_id: uuid.UUID, data: s.ProjectUpdate) -> s.Project:
        row = await self.project(project_id, lock=True)
        changes = {
            k: v
            for k, v in (("name", data.name), ("description", data.description))
            if v is not None
        }
        if not changes:
            raise BadRequest("nothing to change: give name or description")
        for k, v in changes.items():
            setattr(row, k, v)
        row.updated_at = func.now()
        await append(
            self.s, project_event(row.id, "project.updated", self.principal.actor, **changes)
        )
        await self.s.commit()
        await self.s.refresh(row)
        return project_out(row)

    async def delete(self, project_id: uuid.UUID) -> None:
        row = await self.project(project_id, lock=True)
        await self._require_owner(project_id)
        await append(
            self.s, project_event(row.id, "project.deleted", self.principal.actor, name=row.name)
        )
        await self.s.delete(row)
        await self.s.commit()

    async def _require_owner(self, project_id: uuid.UUID) -> None:
        if self.principal.is_admin:
            return
        member = await self.s.get(m.Member, (project_id, self.principal.user_id))
        if member is None or member.role != "owner":
            raise Forbidden(
                "only the project's owners (or an admin) may do that", project_id=str(project_id)
            )

    async def members(self, project_id: uuid.UUID) -> builtins.list[s.Member]:
        rows = (
            await self.s.execute(
                select(m.Member, USERS.c.username)
                .join(USERS, USERS.c.id == m.Member.user_id)
                .where(m.Member.project_id == project_id)
                .order_by(USERS.c.username)
            )
        ).all()
        return [s.Member(user_id=mem.user_id, username=name, role=mem.role) for mem, name in rows]

    async def add_member(self, project_id: uuid.UUID, data: s.MemberAdd) -> builtins.list[s.Member]:
        await self.project(project_id, lock=True)
        await self._require_owner(project_id)
        user_id = await self.s.scalar(select(USERS.c.id).where(USERS.c.username == data.username))
        if user_id is None:
            raise BadRequest(f"username: no user named {data.username!r}", field="username")
        if await self.s.get(m.Member, (project_id, user_id)) is not None:
            raise Conflict(f"{data.username} is already a member", project_id=str(project_id))
        self.s.add(m.Member(project_id=project_id, user_id=user_id, role=data.role))
        await append(
            self.s,
            project_event(
                project_id,
                "project.member_added",
                self.principal.actor,
                username=data.username,
                role=data.role,
            ),
        )
        await self.s.commit()
        return await self.members(project_id)

    async def remove_member(
        self, project_id: uuid.UUID, user_id: uuid.UUID
    ) -> builtins.list[s.Member]:
        await self.project(project_id, lock=True)
        await self._require_owner(project_id)
        member = await self.s.get(m.Member, (project_id, user_id))
        if member is None:
            raise NotFound("not a member of this project", project_id=str(project_id))
        owners = await self.s.scalar(
            select(func.count()).where(m.Member.project_id == project_id, m.Member.role == "owner")
        )
        if member.role == "owner" and owners == 1:
            raise Conflict("a project keeps at least one owner", project_id=str(project_id))
        await self.s.delete(member)
        await append(
            self.s,
            project_event(
                project_id, "project.member_removed", self.principal.actor, user_id=str(user_id)
            ),
        )
        await self.s.commit()
        return await self.members(project_id)
