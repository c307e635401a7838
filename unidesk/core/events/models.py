"""The ``events`` table: every durable change, in order; the tasks/nodes tables are its
projections."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Index, String, func, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from unidesk.core.db.base import Base

__all__ = ["PROJECTION_GUARD_DROP_SQL", "PROJECTION_GUARD_SQL", "Event"]


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    ts: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), nullable=False
    )
    kind: Mapped[str] = mapped_column(String(64), nullable=False)
    subject_type: Mapped[str] = mapped_column(String(32), nullable=False)
    subject_id: Mapped[str] = mapped_column(String(64), nullable=False)
    actor: Mapped[str] = mapped_column(String(128), nullable=False)
    payload: Mapped[dict[str, Any]] = mapped_column(
        JSONB, nullable=False, server_default=text("'{}'::jsonb")
    )
    txid: Mapped[int] = mapped_column(
        BigInteger, nullable=False, server_default=text("txid_current()")
    )

    __table_args__ = (
        Index("ix_events_subject", "subject_type", "subject_id", "id"),
        Index("ix_events_txid_subject", "txid", "subject_id"),  # the projection guard probe
        Index("ix_events_kind_id", "kind", "id"),
    )


# A deferred constraint trigger on each projection table: a row may be inserted, or its
# state changed, only in a transaction that also wrote an event about that subject.
# This is what makes "nothing changes state without an event" a database rule.
_GUARDED = (("tasks", "id"), ("task_attempts", "task_id"), ("nodes", "id"))

PROJECTION_GUARD_SQL: list[str] = [
    """
    CREATE OR REPLACE FUNCTION unidesk_require_event() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE subject text := to_jsonb(NEW) ->> TG_ARGV[0];
    BEGIN
      IF NOT EXISTS (SELECT 1 FROM events WHERE txid = txid_current() AND subject_id = subject) THEN
        RAISE EXCEPTION 'state change on % % without an event in the same transaction',
        TG_TABLE_NAME, subject
          USING ERRCODE = 'integrity_constraint_violation';
      END IF;
      RETURN NULL;
    END $$;
    """,
]
PROJECTION_GUARD_DROP_SQL: list[str] = []
for _table, _col in _GUARDED:
    PROJECTION_GUARD_SQL += [
        f"""CREATE CONSTRAINT TRIGGER {_table}_insert_needs_event AFTER INSERT ON {_table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION
            unidesk_require_event('{_col}')""",
        f"""CREATE CONSTRAINT TRIGGER {_table}_state_needs_event AFTER UPDATE OF state ON {_table}
            DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
            EXECUTE FUNCTION unidesk_require_event('{_col}')""",
    ]
    PROJECTION_GUARD_DROP_SQL += [
        f"DROP TRIGGER IF EXISTS {_table}_insert_needs_event ON {_table}",
        f"DROP TRIGGER IF EXISTS {_table}_state_needs_event ON {_table}",
    ]
PROJECTION_GUARD_DROP_SQL.append("DROP FUNCTION IF EXISTS unidesk_require_event()")
