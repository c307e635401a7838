"""HTTP handlers of scheduling policy: per-user quotas (admins set them) and usage accounting."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, put
from litestar.params import Parameter
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.guards import admin_only
from unidesk.core.auth.models import User
from unidesk.core.auth.schemas import Principal
from unidesk.core.deps import owner_filter
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.scheduler.models import QuotaRow
from unidesk.core.scheduler.shares import daily_usage, share_keys
from unidesk.core.settings import Settings
from unidesk.errors import NotFound

__all__ = ["Quota", "QuotaController", "QuotaSet", "UsageController"]


class QuotaSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Limits on one user's concurrently held resources; null means no limit."""

    max_gpus: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    max_cpus: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    max_memory_mb: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None  # INTEGER column


class Quota(QuotaSet, kw_only=True):
    user_id: uuid.UUID
    username: str
    updated_at: datetime


def _quota_out(q: QuotaRow, username: str) -> Quota:
    return Quota(
        user_id=q.user_id,
        username=username,
        max_gpus=q.max_gpus,
        max_cpus=q.max_cpus,
        max_memory_mb=q.max_memory_mb,
        updated_at=q.updated_at,
    )


class QuotaController(Controller):
    path = "/api/quotas"
    tags = ("scheduling",)

    @get("/", operation_id="list_quotas")
    async def list_quotas(self, db: AsyncSession) -> dict[str, list[Quota]]:
        """Every user's quota (users without one have no limit)."""
        rows = (
            await db.execute(
                select(QuotaRow, User.username)
                .join(User, User.id == QuotaRow.user_id)
                .order_by(User.username)
            )
        ).all()
        return {"items": [_quota_out(q, name) for q, name in rows]}

    @put("/{user_id:uuid}", operation_id="set_quota", guards=[admin_only])
    async def set_quota(
        self, user_id: uuid.UUID, data: QuotaSet, db: AsyncSession, principal: Principal
    ) -> Quota:
        """Set a user's limits on concurrent GPUs, CPUs and memory (admin)."""
        username = await db.scalar(select(User.username).where(User.id == user_id))
        if username is None:
            raise NotFound(f"user {user_id} not found", user_id=str(user_id))
        values = msgspec.to_builtins(data)
        await db.execute(
            insert(QuotaRow)
            .values(user_id=user_id, **values)
            .on_conflict_do_update(
                index_elements=[QuotaRow.user_id],
                set_={**values, "updated_at": datetime.now(UTC)},
            )
        )
        await append(
            db,
            NewEvent(
                kind="quota.set",
                subject_type="user",
                subject_id=str(user_id),
                actor=principal.actor,
                payload=values,
            ),
        )
        await db.commit()
        row = await db.get(QuotaRow, user_id, populate_existing=True)
        assert row is not None
        return _quota_out(row, username)

    @delete("/{user_id:uuid}", operation_id="delete_quota", guards=[admin_only])
    async def delete_quota(
        self, user_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> None:
        """Remove a user's quota (no limits)."""
        row = await db.get(QuotaRow, user_id)
        if row is None:
            raise NotFound(f"user {user_id} has no quota", user_id=str(user_id))
        await db.delete(row)
        await append(
            db,
            NewEvent(
                kind="quota.set",
                subject_type="user",
                subject_id=str(user_id),
                actor=principal.actor,
                payload={"max_gpus": None, "max_cpus": None, "max_memory_mb": None},
            ),
        )
        await db.commit()


class UsageController(Controller):
    path = "/api/usage"
    tags = ("scheduling",)

    @get("/", operation_id="get_usage")
    async def usage(
        self,
        db: AsyncSession,
        principal: Principal,
        settings: Settings,
        days: Annotated[int, Parameter(ge=1, le=366)] = 7,
        owner: Annotated[str | None, Parameter(description="'me' or a user id")] = None,
    ) -> dict[str, Any]:
        """Resource-time per user per UTC day (CPU-, GPU-, GiB-hours) and each user's current
        fair-share key (decayed usage plus committed running work, CPU-hour equivalents)."""
        owner_id = owner_filter(owner, principal)
        since = (datetime.now(UTC) - timedelta(days=days - 1)).date()
        keys = await share_keys(db, settings)
        names: dict[uuid.UUID | None, str] = dict(
            (await db.execute(select(User.id, User.username).where(User.id.in_(list(keys))))).all()
        )
        return {
            "since": since.isoformat(),
            "items": await daily_usage(db, since, owner_id),
            "fair_share": [
                {"user_id": k, "username": names.get(k), "share_cpu_hours": round(v / 3600, 4)}
                for k, v in sorted(keys.items(), key=lambda kv: kv[1])
                if owner_id is None or k == owner_id
            ],
        }
