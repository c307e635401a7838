"""tasks: partial index of the pending tasks no pass has given a reason yet

A pass no longer counts every pending task per group (a loose scan of ix_tasks_pending_groups
finds the groups); the tasks that still need their group's reason (new ones, and retries out
of their backoff) are found on this small index instead.

Revision ID: 0008_pending_fresh_index
Revises: 0007_accounts_quota_labels
Create Date: 2026-11-30 18:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_pending_fresh_index"
down_revision = "0007_accounts_quota_labels"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tasks_pending_fresh",
        "tasks",
        ["group_key"],
        postgresql_where=sa.text(
            "state = 'pending' AND (pending_reason IS NULL OR pending_reason = 'retry_backoff')"
        ),
    )


def downgrade() -> None:
    op.drop_index("ix_tasks_pending_fresh", table_name="tasks")
