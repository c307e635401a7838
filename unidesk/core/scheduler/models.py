"""Tables of the scheduler: account members, admin-set quotas and the reservations every
instance honours."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    func,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base, new_id
from unidesk.core.tasks.models import ACCOUNT_PATTERN

__all__ = ["AccountMemberRow", "QuotaRow", "ReservationRow"]


class AccountMemberRow(Base):
    """A user who may charge tasks to an account (admins add and remove them; an admin may
    charge any account, and a plugin's account, e.g. a work item's project, is the plugin's)."""

    __tablename__ = "account_members"

    account: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    added_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint(f"account ~ '{ACCOUNT_PATTERN}'", name="account_name"),
        Index("ix_account_members_user_id", "user_id"),
    )


class QuotaRow(Base):
    """Limits on what one user's or one account's active attempts may hold at once, on every
    node or only on nodes carrying ``label`` (``key=value``); None means no limit."""

    __tablename__ = "scheduling_quotas"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    user_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    account: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200), nullable=False, server_default="")
    """``key=value``: the quota counts only attempts on nodes with that label; '' counts all."""
    max_gpus: Mapped[int | None] = mapped_column(Integer)
    max_cpus: Mapped[float | None] = mapped_column(Float)
    max_memory_mb: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (
        CheckConstraint("(user_id IS NULL) <> (account IS NULL)", name="one_subject"),
        Index(
            "ux_scheduling_quotas_user_label",
            "user_id",
            "label",
            unique=True,
            postgresql_where=text("user_id IS NOT NULL"),
        ),
        Index(
            "ux_scheduling_quotas_account_label",
            "account",
            "label",
            unique=True,
            postgresql_where=text("account IS NOT NULL"),
        ),
    )


class ReservationRow(Base):
    """The node a waiting task holds a reservation on (written by the pass that took it), so
    every server instance's pass keeps it there and holds lower-ranked work off that node."""

    __tablename__ = "scheduling_reservations"

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    node_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), nullable=False
    )
