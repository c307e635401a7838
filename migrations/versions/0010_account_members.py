"""account_members: who may charge tasks to a scheduling account

Until now any member could name any account. An account now has members (admins add and
remove them); a member may charge only the accounts they belong to. Every user who already
owns a task charged to an account becomes its member, so what worked before keeps working.

Revision ID: 0010_account_members
Revises: 0009_backoff_unset_index
Create Date: 2026-11-30 21:30:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_account_members"
down_revision = "0009_backoff_unset_index"
branch_labels = None
depends_on = None

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"


def upgrade() -> None:
    op.create_table(
        "account_members",
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Uuid(), nullable=False),
        sa.Column(
            "added_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.CheckConstraint(
            f"account ~ '{ACCOUNT_PATTERN}'", name=op.f("ck_account_members_account_name")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_account_members_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account", "user_id", name=op.f("pk_account_members")),
    )
    op.create_index("ix_account_members_user_id", "account_members", ["user_id"])
    op.execute(
        "INSERT INTO account_members (account, user_id) SELECT DISTINCT account, owner_id "
        "FROM tasks WHERE account IS NOT NULL AND owner_id IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("account_members")
