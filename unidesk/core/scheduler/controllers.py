"""HTTP handlers of scheduling policy: quotas per user and per account, on all nodes or on the
nodes of one label (admins set them), and usage accounting per user and per account."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Controller, delete, get, put
from litestar.params import Parameter
from sqlalchemy import Select, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.guards import admin_only
from unidesk.core.auth.models import User
from unidesk.core.auth.schemas import Principal
from unidesk.core.deps import owner_filter
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.scheduler.accounts import account_name
from unidesk.core.scheduler.models import QuotaRow
from unidesk.core.scheduler.shares import daily_usage, share_keys
from unidesk.core.settings import Settings
from unidesk.errors import BadRequest, NotFound

__all__ = ["Quota", "QuotaController", "QuotaSet", "UsageController"]

_LABEL = re.compile(r"^[^=\s]{1,100}=[^\s]{0,99}$")
_NO_LIMITS = {"max_gpus": None, "max_cpus": None, "max_memory_mb": None}
Label = Annotated[
    str | None,
    Parameter(
        description="key=value: the quota counts and limits only attempts on nodes with this "
        "label (e.g. pool=a100); omitted: all nodes",
        max_length=200,
    ),
]


class QuotaSet(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Limits on concurrently held resources; null means no limit."""

    max_gpus: Annotated[int, msgspec.Meta(ge=0, le=100_000)] | None = None
    max_cpus: Annotated[float, msgspec.Meta(ge=0, le=1_000_000)] | None = None
    max_memory_mb: Annotated[int, msgspec.Meta(ge=0, le=2**31 - 1)] | None = None  # INTEGER column


class Quota(QuotaSet, kw_only=True):
    user_id: uuid.UUID | None
    """The user limited (None for an account's quota)."""
    username: str | None
    account: str | None
    """The account limited (None for a user's quota)."""
    label: str
    """``key=value``: only attempts on nodes with this label count; '' for all nodes."""
    updated_at: datetime


def _quota_out(q: QuotaRow, username: str | None) -> Quota:
    return Quota(
        user_id=q.user_id,
        username=username,
        account=q.account,
        label=q.label,
        max_gpus=q.max_gpus,
        max_cpus=q.max_cpus,
        max_memory_mb=q.max_memory_mb,
        updated_at=q.updated_at,
    )


def _label(label: str | None) -> str:
    if label is None or label == "":
        return ""
    if not _LABEL.match(label):
        raise BadRequest(f"label: {label!r} is not key=value", field="label")
    return label


async def _put(
    db: AsyncSession,
    principal: Principal,
    data: QuotaSet,
    *,
    user_id: uuid.UUID | None,
    account: str | None,
    label: str,
) -> QuotaRow:
    values = msgspec.to_builtins(data)
    col = QuotaRow.__table__.c
    await db.execute(
        insert(QuotaRow)
        .values(id=uuid.uuid4(), user_id=user_id, account=account, label=label, **values)
        .on_conflict_do_update(
            index_elements=[QuotaRow.user_id if user_id else QuotaRow.account, QuotaRow.label],
            index_where=col.user_id.is_not(None) if user_id else col.account.is_not(None),
            set_={**values, "updated_at": datetime.now(UTC)},
        )
    )
    await _event(db, principal, user_id, account, label, values)
    await db.commit()
    row = await db.scalar(
        _select(user_id, account, label).execution_options(populate_existing=True)
    )
    assert isinstance(row, QuotaRow)
    return row


def _select(user_id: uuid.UUID | None, account: str | None, label: str) -> Select[Any]:
    stmt = select(QuotaRow).where(QuotaRow.label == label)
    if user_id is not None:
        return stmt.where(QuotaRow.user_id == user_id)
    return stmt.where(QuotaRow.account == account)


async def _event(
    db: AsyncSession,
    principal: Principal,
    user_id: uuid.UUID | None,
    account: str | None,
    label: str,
    values: dict[str, Any],
) -> None:
    await append(
        db,
        NewEvent(
            kind="quota.set",
            subject_type="user" if user_id else "account",
            subject_id=str(user_id) if user_id else str(account),
            actor=principal.actor,
            payload={**values, **({"label": label} if label else {})},
        ),
    )


async def _delete(
    db: AsyncSession,
    principal: Principal,
    *,
    user_id: uuid.UUID | None,
    account: str | None,
    label: str,
) -> None:
    row = await db.scalar(_select(user_id, account, label))
    if row is None:
        who = f"user {user_id}" if user_id else f"account {account}"
        raise NotFound(f"{who} has no quota{' on ' + label if label else ''}")
    await db.delete(row)
    await _event(db, principal, user_id, account, label, dict(_NO_LIMITS))
    await db.commit()


class QuotaController(Controller):
    path = "/api/quotas"
    tags = ("scheduling",)

    @get("/", operation_id="list_quotas")
    async def list_quotas(self, db: AsyncSession) -> dict[str, list[Quota]]:
        """Every quota, users' then accounts' (a subject without one has no limit)."""
        rows = (
            await db.execute(
                select(QuotaRow, User.username)
                .outerjoin(User, User.id == QuotaRow.user_id)
                .order_by(QuotaRow.account.nulls_first(), User.username, QuotaRow.label)
            )
        ).all()
        return {"items": [_quota_out(q, name) for q, name in rows]}

    @put("/{user_id:uuid}", operation_id="set_quota", guards=[admin_only])
    async def set_quota(
        self,
        user_id: uuid.UUID,
        data: QuotaSet,
        db: AsyncSession,
        principal: Principal,
        label: Label = None,
    ) -> Quota:
        """Set a user's limits on concurrent GPUs, CPUs and memory, on all nodes or on the
        nodes with ``label`` (admin)."""
        lab = _label(label)
        username = await db.scalar(select(User.username).where(User.id == user_id))
        if username is None:
            raise NotFound(f"user {user_id} not found", user_id=str(user_id))
        row = await _put(db, principal, data, user_id=user_id, account=None, label=lab)
        return _quota_out(row, username)

    @delete("/{user_id:uuid}", operation_id="delete_quota", guards=[admin_only])
    async def delete_quota(
        self, user_id: uuid.UUID, db: AsyncSession, principal: Principal, label: Label = None
    ) -> None:
        """Remove a user's quota (on ``label``'s nodes, or the one on all nodes)."""
        await _delete(db, principal, user_id=user_id, account=None, label=_label(label))

    @put("/accounts/{account:str}", operation_id="set_account_quota", guards=[admin_only])
    async def set_account_quota(
        self,
        account: str,
        data: QuotaSet,
        db: AsyncSession,
        principal: Principal,
        label: Label = None,
    ) -> Quota:
        """Set an account's limits on what all its tasks hold at once, on all nodes or on the
        nodes with ``label`` (admin)."""
        lab = _label(label)
        row = await _put(
            db, principal, data, user_id=None, account=account_name(account), label=lab
        )
        return _quota_out(row, None)

    @delete("/accounts/{account:str}", operation_id="delete_account_quota", guards=[admin_only])
    async def delete_account_quota(
        self, account: str, db: AsyncSession, principal: Principal, label: Label = None
    ) -> None:
        """Remove an account's quota (on ``label``'s nodes, or the one on all nodes)."""
        await _delete(
            db, principal, user_id=None, account=account_name(account), label=_label(label)
        )


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
        account: Annotated[
            str | None, Parameter(description="only this account's tasks", max_length=64)
        ] = None,
    ) -> dict[str, Any]:
        """Resource-time per user and per account per UTC day (CPU-, GPU-, GiB-hours), and each
        user's and account's current fair-share key (decayed usage plus committed running
        work, CPU-hour equivalents; a task ranks by its owner's key plus its account's)."""
        owner_id = owner_filter(owner, principal)
        acc = account_name(account) if account is not None else None
        since = (datetime.now(UTC) - timedelta(days=days - 1)).date()
        keys = await share_keys(db, settings)
        names: dict[uuid.UUID | None, str] = dict(
            (
                await db.execute(
                    select(User.id, User.username).where(User.id.in_(list(keys.users)))
                )
            ).all()
        )
        users, accounts = await daily_usage(db, since, owner_id, acc)
        return {
            "since": since.isoformat(),
            "items": users,
            "accounts": accounts,
            "fair_share": [
                {"user_id": k, "username": names.get(k), "share_cpu_hours": round(v / 3600, 4)}
                for k, v in sorted(keys.users.items(), key=lambda kv: kv[1])
                if owner_id is None or k == owner_id
            ],
            "account_fair_share": [
                {"account": k, "share_cpu_hours": round(v / 3600, 4)}
                for k, v in sorted(keys.accounts.items(), key=lambda kv: kv[1])
                if acc is None or k == acc
            ],
        }
