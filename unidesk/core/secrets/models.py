"""The ``secrets`` table: one row per secret, its value sealed (never stored in clear)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, LargeBinary, String, UniqueConstraint, func
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base, CreatedAt, new_id
from unidesk.core.secrets.schemas import Scope

__all__ = ["SecretRow"]


class SecretRow(CreatedAt, Base):
    __tablename__ = "secrets"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    scope: Mapped[Scope] = mapped_column(String(16), nullable=False)
    """``user``, ``project`` or ``global``."""
    scope_key: Mapped[str] = mapped_column(String(160), nullable=False)
    """``user:<user id>``, ``project:<project id>`` or ``global``; with ``name``, unique."""
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    project: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    key_id: Mapped[str] = mapped_column(String(16), nullable=False)
    """Id of the key (in the key file) that sealed ``sealed``."""
    sealed: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    """AES-GCM nonce + ciphertext of the value, bound to ``scope_key/name``."""
    created_by: Mapped[str] = mapped_column(String(128), nullable=False)
    updated_by: Mapped[str] = mapped_column(String(128), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )

    __table_args__ = (UniqueConstraint("scope_key", "name"),)

    @property
    def identity(self) -> str:
        return f"{self.scope_key}/{self.name}"
