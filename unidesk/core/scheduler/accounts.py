"""Members of scheduling accounts: who may charge tasks to an account (admins manage them)."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import msgspec
from litestar import Controller, delete, get, put
from sqlalchemy import exists, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from unidesk.core.auth.guards import admin_only
from unidesk.core.auth.models import User
from unidesk.core.auth.schemas import Principal
from unidesk.core.events.writer import NewEvent, append
from unidesk.core.scheduler.models import AccountMemberRow
from unidesk.core.tasks.models import ACCOUNT_PATTERN
from unidesk.errors import BadRequest, NotFound

__all__ = ["Account", "AccountController", "AccountMember", "account_name", "is_member"]


class AccountMember(msgspec.Struct, kw_only=True):
    account: str
    user_id: uuid.UUID
    username: str
    added_at: datetime


class Account(msgspec.Struct, kw_only=True):
    account: str
    members: list[AccountMember]
    """Who may charge tasks to it (admins may charge any account)."""


async def is_member(db: AsyncSession, account: str, user_id: uuid.UUID) -> bool:
    """Whether ``user_id`` may charge tasks to ``account``."""
    row = AccountMemberRow
    stmt = select(exists().where(row.account == account, row.user_id == user_id))
    return bool(await db.scalar(stmt))


def account_name(account: str) -> str:
    """``account`` when it is an account name, else 400."""
    if not re.fullmatch(ACCOUNT_PATTERN, account):
        raise BadRequest(f"account: {account!r} is not an account name", field="account")
    return account


async def _event(
    db: AsyncSession, principal: Principal, kind: str, account: str, user: User
) -> None:
    await append(
        db,
        NewEvent(
            kind=kind,
            subject_type="account",
            subject_id=account,
            actor=principal.actor,
            payload={"user_id": str(user.id), "username": user.username},
        ),
    )


class AccountController(Controller):
    path = "/api/accounts"
    tags = ("scheduling",)

    @get("/", operation_id="list_accounts")
    async def list_accounts(self, db: AsyncSession) -> dict[str, list[Account]]:
        """Every account that has members, with them (by account, then username)."""
        rows = (
            await db.execute(
                select(AccountMemberRow, User.username)
                .join(User, User.id == AccountMemberRow.user_id)
                .order_by(AccountMemberRow.account, User.username)
            )
        ).all()
        out: dict[str, Account] = {}
        for m, username in rows:
            acc = out.setdefault(m.account, Account(account=m.account, members=[]))
            acc.members.append(
                AccountMember(
                    account=m.account, user_id=m.user_id, username=username, added_at=m.added_at
                )
            )
        return {"items": list(out.values())}

    @put(
        "/{account:str}/members/{user_id:uuid}",
        operation_id="add_account_member",
        guards=[admin_only],
    )
    async def add_member(
        self, account: str, user_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> AccountMember:
        """Let a user charge tasks to ``account`` (admin); adding a member again changes
        nothing."""
        name = account_name(account)
        user = await db.get(User, user_id)
        if user is None:
            raise NotFound(f"user {user_id} not found", user_id=str(user_id))
        added = await db.scalar(
            insert(AccountMemberRow)
            .values(account=name, user_id=user_id)
            .on_conflict_do_nothing()
            .returning(AccountMemberRow.added_at)
        )
        if added is not None:
            await _event(db, principal, "account.member_added", name, user)
        else:
            added = await db.scalar(
                select(AccountMemberRow.added_at).where(
                    AccountMemberRow.account == name, AccountMemberRow.user_id == user_id
                )
            )
        await db.commit()
        assert added is not None
        return AccountMember(account=name, user_id=user_id, username=user.username, added_at=added)

    @delete(
        "/{account:str}/members/{user_id:uuid}",
        operation_id="remove_account_member",
        guards=[admin_only],
    )
    async def remove_member(
        self, account: str, user_id: uuid.UUID, db: AsyncSession, principal: Principal
    ) -> None:
        """Stop a user charging new tasks to ``account`` (admin); tasks already submitted keep
        their account."""
        name = account_name(account)
        row = await db.get(AccountMemberRow, (name, user_id))
        user = await db.get(User, user_id)
        if row is None or user is None:
            raise NotFound(f"user {user_id} is not a member of account {name!r}")
        await db.delete(row)
        await _event(db, principal, "account.member_removed", name, user)
        await db.commit()
