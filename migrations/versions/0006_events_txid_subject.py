"""events: index (txid, subject_id) for the projection guard

The deferred guard on every projection row looks up an event of its own transaction about its
subject. Indexed by txid alone, that lookup scanned every event of the transaction, so a batch
of n tasks cost n² comparisons at commit (10,000 tasks: 10⁸). With subject_id in the index it
is one probe per row.

Revision ID: 0006_events_txid_subject
Revises: 0005_node_host_mounts
Create Date: 2026-11-30 15:20:00
"""

from alembic import op

revision = "0006_events_txid_subject"
down_revision = "0005_node_host_mounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_events_txid_subject", "events", ["txid", "subject_id"])
    op.drop_index("ix_events_txid", table_name="events")


def downgrade() -> None:
    op.create_index("ix_events_txid", "events", ["txid"])
    op.drop_index("ix_events_txid_subject", table_name="events")
