"""Table ``scheduling_quotas``: admin-set caps on one user's concurrent resources."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Float, ForeignKey, Integer, func
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base

__all__ = ["QuotaRow"]


class QuotaRow(Base):
    """Limits on what one user's active attempts may hold at once; None means no limit."""

    __tablename__ = "scheduling_quotas"

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    max_gpus: Mapped[int | None] = mapped_column(Integer)
    max_cpus: Mapped[float | None] = mapped_column(Float)
    max_memory_mb: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
