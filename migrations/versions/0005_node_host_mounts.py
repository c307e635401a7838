"""nodes.host_mounts: the named host directories a node's owner declared (name -> ro|rw)

Revision ID: 0005_node_host_mounts
Revises: 0004_scheduling_policy
Create Date: 2026-11-30 15:00:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005_node_host_mounts"
down_revision = "0004_scheduling_policy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "nodes",
        sa.Column(
            "host_mounts",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("nodes", "host_mounts")
