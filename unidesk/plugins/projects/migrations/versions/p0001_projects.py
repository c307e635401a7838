"""projects plugin schema

Revision ID: p0001_projects
Revises:
Create Date: 2026-11-27 19:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "p0001_projects"
down_revision = None
branch_labels = ("projects",)
depends_on = "0001_core"


def upgrade() -> None:
    op.create_table(
        "projects_projects",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_projects_projects_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects_projects")),
    )
    op.create_table(
        "projects_members",
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects_projects.id"],
            name=op.f("fk_projects_members_project_id_projects_projects"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_projects_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("project_id", "user_id", name=op.f("pk_projects_members")),
    )
    op.create_table(
        "projects_work_items",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("project_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("start_date", sa.Date(), nullable=True),
        sa.Column("due_date", sa.Date(), nullable=True),
        sa.Column("estimate_hours", sa.Float(), nullable=True),
        sa.Column("milestone", sa.Boolean(), nullable=False),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            "status IN ('todo', 'doing', 'done')", name=op.f("ck_projects_work_items_status")
        ),
        sa.CheckConstraint(
            "start_date IS NULL OR due_date IS NULL OR due_date >= start_date",
            name=op.f("ck_projects_work_items_dates"),
        ),
        sa.ForeignKeyConstraint(
            ["assignee_id"],
            ["users.id"],
            name=op.f("fk_projects_work_items_assignee_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["projects_projects.id"],
            name=op.f("fk_projects_work_items_project_id_projects_projects"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_projects_work_items")),
    )
    op.create_index(
        op.f("ix_projects_work_items_project_id"),
        "projects_work_items",
        ["project_id"],
        unique=False,
    )
    op.create_table(
        "projects_dependencies",
        sa.Column("predecessor_id", sa.Uuid(), nullable=False),
        sa.Column("successor_id", sa.Uuid(), nullable=False),
        sa.CheckConstraint(
            "predecessor_id <> successor_id", name=op.f("ck_projects_dependencies_not_self")
        ),
        sa.ForeignKeyConstraint(
            ["predecessor_id"],
            ["projects_work_items.id"],
            name=op.f("fk_projects_dependencies_predecessor_id_projects_work_items"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["successor_id"],
            ["projects_work_items.id"],
            name=op.f("fk_projects_dependencies_successor_id_projects_work_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "predecessor_id", "successor_id", name=op.f("pk_projects_dependencies")
        ),
    )
    op.create_index(
        "ix_projects_dependencies_successor",
        "projects_dependencies",
        ["successor_id"],
        unique=False,
    )
    op.create_table(
        "projects_task_links",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("work_item_id", sa.Uuid(), nullable=False),
        sa.Column("task_state", sa.String(length=16), nullable=False),
        sa.Column(
            "linked_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_projects_task_links_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["work_item_id"],
            ["projects_work_items.id"],
            name=op.f("fk_projects_task_links_work_item_id_projects_work_items"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_projects_task_links")),
    )
    op.create_index(
        op.f("ix_projects_task_links_work_item_id"),
        "projects_task_links",
        ["work_item_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_table("projects_task_links")
    op.drop_table("projects_dependencies")
    op.drop_table("projects_work_items")
    op.drop_table("projects_members")
    op.drop_table("projects_projects")
