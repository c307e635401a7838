"""The ``artifacts`` table: one row per stored object (uploading or ready), a projection of
artifact events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base, CreatedAt, new_id

__all__ = ["ARTIFACT_STATES", "ArtifactRow"]

ARTIFACT_STATES = ("uploading", "ready")


class ArtifactRow(CreatedAt, Base):
    __tablename__ = "artifacts"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(512), nullable=False, unique=True)
    state: Mapped[str] = mapped_column(String(16), nullable=False, default="uploading")
    size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    content_type: Mapped[str] = mapped_column(
        String(255), nullable=False, default="application/octet-stream"
    )
    backend: Mapped[str] = mapped_column(String(16), nullable=False)
    key: Mapped[str] = mapped_column(String(1024), nullable=False, unique=True)
    upload_id: Mapped[str | None] = mapped_column(Text)
    """S3 multipart upload id while uploading."""
    owner_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    task_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("tasks.id", ondelete="SET NULL"), index=True
    )
    attempt_no: Mapped[int | None] = mapped_column(Integer)
    project: Mapped[str | None] = mapped_column(String(128))
    labels: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb"), default=dict
    )
    ready_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    __table_args__ = (Index("ix_artifacts_created", "created_at", "id"),)
