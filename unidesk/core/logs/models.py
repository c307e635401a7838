"""Table ``log_chunks``: one row per agent chunk, keyed by (task, attempt, seq) so resends
dedupe."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, func
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base
from unidesk.protocol import LogStream

__all__ = ["LogChunkRow"]


class LogChunkRow(Base):
    __tablename__ = "log_chunks"

    task_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True
    )
    attempt_no: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    stream: Mapped[LogStream] = mapped_column(String(8), nullable=False)
    data: Mapped[str] = mapped_column(Text, nullable=False)
    ts: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
