"""Table ``nodes``: a projection of node events plus batched heartbeat facts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base, CreatedAt, new_id

__all__ = ["NodeRow", "NodeState"]

NodeState = Literal["online", "offline"]
"""Whether the node's agent is connected (draining and unhealthy are separate columns)."""


class NodeRow(CreatedAt, Base):
    __tablename__ = "nodes"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(128), unique=True, nullable=False)
    token_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("node_tokens.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[NodeState] = mapped_column(String(16), nullable=False, default="offline")
    draining: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    unhealthy_reason: Mapped[str | None] = mapped_column(Text)
    hostname: Mapped[str] = mapped_column(String(255), nullable=False, default="")
    os: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    agent_version: Mapped[str] = mapped_column(String(32), nullable=False, default="")
    protocol_version: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    cpus: Mapped[float] = mapped_column(Float, nullable=False, default=0)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    gpus: Mapped[list[dict[str, Any]]] = mapped_column(JSONB, nullable=False, default=list)
    labels: Mapped[dict[str, str]] = mapped_column(JSONB, nullable=False, default=dict)
    runtimes: Mapped[list[str]] = mapped_column(JSONB, nullable=False, default=list)
    host_mounts: Mapped[dict[str, str]] = mapped_column(
        JSONB, nullable=False, default=dict, server_default=text("'{}'::jsonb")
    )
    """Named host directories the node's owner declared: name -> ``ro`` or ``rw``."""
    instance_id: Mapped[str | None] = mapped_column(String(64))
    """The server instance holding this node's socket (None while disconnected)."""
    connection_id: Mapped[str | None] = mapped_column(String(64))
    """Identifies the current socket; a newer connection with the same token replaces it."""
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    connected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_usage: Mapped[dict[str, Any]] = mapped_column(JSONB, nullable=False, default=dict)
