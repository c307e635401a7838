"""pipelines plugin schema

Revision ID: p0001_pipelines
Revises:
Create Date: 2026-11-30 17:30:00
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "p0001_pipelines"
down_revision = None
branch_labels = ("pipelines",)
depends_on = "0001_core"


def upgrade() -> None:
    op.create_table(
        "pipelines_pipelines",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("owner_role", sa.String(length=16), nullable=False),
        sa.Column("spec", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("rerun_of", sa.Uuid(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_pipelines_pipelines_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pipelines_pipelines")),
    )
    op.create_index(
        op.f("ix_pipelines_pipelines_state"), "pipelines_pipelines", ["state"], unique=False
    )
    op.create_index(
        op.f("ix_pipelines_pipelines_owner_id"), "pipelines_pipelines", ["owner_id"], unique=False
    )
    op.create_table(
        "pipelines_steps",
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=True),
        sa.Column("inputs", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id"],
            ["pipelines_pipelines.id"],
            name=op.f("fk_pipelines_steps_pipeline_id_pipelines_pipelines"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("pipeline_id", "name", name=op.f("pk_pipelines_steps")),
    )
    op.create_table(
        "pipelines_step_tasks",
        sa.Column("pipeline_id", sa.Uuid(), nullable=False),
        sa.Column("step", sa.String(length=63), nullable=False),
        sa.Column("round", sa.Integer(), nullable=False),
        sa.Column("point", sa.Integer(), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("params", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["pipeline_id", "step"],
            ["pipelines_steps.pipeline_id", "pipelines_steps.name"],
            name=op.f("fk_pipelines_step_tasks_pipeline_id_pipelines_steps"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_pipelines_step_tasks_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "pipeline_id", "step", "round", "point", name=op.f("pk_pipelines_step_tasks")
        ),
        sa.UniqueConstraint("task_id", name=op.f("uq_pipelines_step_tasks_task_id")),
    )


def downgrade() -> None:
    op.drop_table("pipelines_step_tasks")
    op.drop_table("pipelines_steps")
    op.drop_index(op.f("ix_pipelines_pipelines_owner_id"), table_name="pipelines_pipelines")
    op.drop_index(op.f("ix_pipelines_pipelines_state"), table_name="pipelines_pipelines")
    op.drop_table("pipelines_pipelines")
