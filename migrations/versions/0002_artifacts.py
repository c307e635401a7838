"""artifacts: stored objects of the large-file store, guarded like every projection

Revision ID: 0002_artifacts
Revises: 0001_core
Create Date: 2026-11-27 18:34:07.230230
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002_artifacts"
down_revision = "0001_core"
branch_labels = None
depends_on = None

GUARD_SQL = [
    """CREATE CONSTRAINT TRIGGER artifacts_insert_needs_event AFTER INSERT ON artifacts
       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION unidesk_require_event('id')""",
    """CREATE CONSTRAINT TRIGGER artifacts_state_needs_event AFTER UPDATE OF state ON artifacts
       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state)
       EXECUTE FUNCTION unidesk_require_event('id')""",
]
GUARD_DROP_SQL = [
    "DROP TRIGGER IF EXISTS artifacts_insert_needs_event ON artifacts",
    "DROP TRIGGER IF EXISTS artifacts_state_needs_event ON artifacts",
]


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.String(length=512), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content_type", sa.String(length=255), nullable=False),
        sa.Column("backend", sa.String(length=16), nullable=False),
        sa.Column("key", sa.String(length=1024), nullable=False),
        sa.Column("upload_id", sa.Text(), nullable=True),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("task_id", sa.Uuid(), nullable=True),
        sa.Column("attempt_no", sa.Integer(), nullable=True),
        sa.Column("project", sa.String(length=128), nullable=True),
        sa.Column(
            "labels",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        sa.Column("ready_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_artifacts_owner_id_users"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_artifacts_task_id_tasks"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint("key", name=op.f("uq_artifacts_key")),
        sa.UniqueConstraint("name", name=op.f("uq_artifacts_name")),
    )
    op.create_index(op.f("ix_artifacts_owner_id"), "artifacts", ["owner_id"], unique=False)
    op.create_index(op.f("ix_artifacts_task_id"), "artifacts", ["task_id"], unique=False)
    op.create_index("ix_artifacts_created", "artifacts", ["created_at", "id"], unique=False)
    # Like tasks and nodes: a row appears, or its state changes, only with an event in the same
    # transaction.
    for stmt in GUARD_SQL:
        op.execute(stmt)


def downgrade() -> None:
    for stmt in GUARD_DROP_SQL:
        op.execute(stmt)
    op.drop_index("ix_artifacts_created", table_name="artifacts")
    op.drop_index(op.f("ix_artifacts_task_id"), table_name="artifacts")
    op.drop_index(op.f("ix_artifacts_owner_id"), table_name="artifacts")
    op.drop_table("artifacts")
