"""research plugin schema

Revision ID: r0001_research
Revises:
Create Date: 2026-11-27 19:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "r0001_research"
down_revision = None
branch_labels = ("research",)
depends_on = "0001_core"


def upgrade() -> None:
    op.create_table(
        "research_experiments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_research_experiments_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_research_experiments")),
    )
    op.create_table(
        "research_metric_keys",
        sa.Column("id", sa.Integer(), sa.Identity(always=False), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_research_metric_keys")),
        sa.UniqueConstraint("name", name=op.f("uq_research_metric_keys_name")),
    )
    op.create_table(
        "research_runs",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("experiment_id", sa.Uuid(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("sweep_id", sa.Uuid(), nullable=True),
        sa.Column("rejected_points", sa.Integer(), nullable=False),
        sa.Column("last_rejection", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["research_experiments.id"],
            name=op.f("fk_research_runs_experiment_id_research_experiments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_research_runs_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_research_runs")),
        sa.UniqueConstraint("task_id", name=op.f("uq_research_runs_task_id")),
    )
    op.create_index(
        op.f("ix_research_runs_experiment_id"), "research_runs", ["experiment_id"], unique=False
    )
    op.create_table(
        "research_metrics",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ts", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["research_metric_keys.id"],
            name=op.f("fk_research_metrics_key_id_research_metric_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["research_runs.id"],
            name=op.f("fk_research_metrics_run_id_research_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key_id", "step", name=op.f("pk_research_metrics")),
    )
    op.create_table(
        "research_metric_summaries",
        sa.Column("run_id", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.Integer(), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("first_step", sa.BigInteger(), nullable=False),
        sa.Column("last_step", sa.BigInteger(), nullable=False),
        sa.Column("last_value", sa.Float(), nullable=False),
        sa.Column("min_value", sa.Float(), nullable=False),
        sa.Column("max_value", sa.Float(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["key_id"],
            ["research_metric_keys.id"],
            name=op.f("fk_research_metric_summaries_key_id_research_metric_keys"),
        ),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["research_runs.id"],
            name=op.f("fk_research_metric_summaries_run_id_research_runs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("run_id", "key_id", name=op.f("pk_research_metric_summaries")),
    )
    op.create_table(
        "research_data_batches",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("attempt_no", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_research_data_batches_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "task_id", "attempt_no", "seq", name=op.f("pk_research_data_batches")
        ),
    )


def downgrade() -> None:
    for table in (
        "research_data_batches",
        "research_metric_summaries",
        "research_metrics",
        "research_runs",
        "research_metric_keys",
        "research_experiments",
    ):
        op.drop_table(table)
