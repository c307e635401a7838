"""Table ``node_samples``: utilisation samples from heartbeats, kept for charts (48 h)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base

__all__ = ["SAMPLE_EVERY_S", "SAMPLE_RETENTION_H", "NodeSampleRow"]

SAMPLE_EVERY_S = 15
SAMPLE_RETENTION_H = 48


class NodeSampleRow(Base):
    __tablename__ = "node_samples"

    node_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("nodes.id", ondelete="CASCADE"), primary_key=True
    )
    ts: Mapped[datetime] = mapped_column(DateTime(timezone=True), primary_key=True)
    cpu_percent: Mapped[float] = mapped_column(Float, nullable=False)
    memory_used_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_total_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    gpus: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False)

    __table_args__ = (Index("ix_node_samples_ts", "ts"),)
