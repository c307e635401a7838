"""scheduling policy: pending reasons, retry backoff and node avoidance, GPU model/memory
requests, expected durations, per-user quotas

Revision ID: 0004_scheduling_policy
Revises: 0003_secrets
Create Date: 2026-11-30 14:45:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_scheduling_policy"
down_revision = "0003_secrets"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tasks", sa.Column("gpu_model", sa.String(length=128), nullable=True))
    op.add_column("tasks", sa.Column("gpu_memory_mb", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("expected_duration_s", sa.Integer(), nullable=True))
    op.add_column("tasks", sa.Column("pending_reason", sa.String(length=32), nullable=True))
    op.add_column(
        "tasks",
        sa.Column("pending_detail", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
    )
    op.add_column("tasks", sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))
    op.add_column(
        "tasks",
        sa.Column(
            "avoid_node_ids",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
    )
    op.create_table(
        "scheduling_quotas",
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("max_gpus", sa.Integer(), nullable=True),
        sa.Column("max_cpus", sa.Float(), nullable=True),
        sa.Column("max_memory_mb", sa.Integer(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_scheduling_quotas_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_scheduling_quotas")),
    )


def downgrade() -> None:
    op.drop_table("scheduling_quotas")
    for col in (
        "avoid_node_ids",
        "not_before",
        "pending_detail",
        "pending_reason",
        "expected_duration_s",
        "gpu_memory_mb",
        "gpu_model",
    ):
        op.drop_column("tasks", col)
