"""research_runs.skipped_lines/skipped_samples: metrics-file lines the agent skipped as malformed

Revision ID: r0002_skipped_lines
Revises: r0001_research
Create Date: 2026-11-30 17:45:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "r0002_skipped_lines"
down_revision = "r0001_research"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "research_runs",
        sa.Column("skipped_lines", sa.Integer(), server_default=sa.text("0"), nullable=False),
    )
    op.add_column(
        "research_runs",
        sa.Column(
            "skipped_samples",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )


def downgrade() -> None:
    op.drop_column("research_runs", "skipped_samples")
    op.drop_column("research_runs", "skipped_lines")
