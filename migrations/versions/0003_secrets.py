"""secrets: the secret store (values sealed with a key kept outside the database)

Revision ID: 0003_secrets
Revises: 0002_artifacts
Create Date: 2026-11-30 14:50:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_secrets"
down_revision = "0002_artifacts"
branch_labels = None
depends_on = None

GUARD_SQL = [
    """CREATE CONSTRAINT TRIGGER secrets_insert_needs_event AFTER INSERT ON secrets
       DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION unidesk_require_event('id')""",
]
GUARD_DROP_SQL = ["DROP TRIGGER IF EXISTS secrets_insert_needs_event ON secrets"]


def upgrade() -> None:
    op.create_table(
        "secrets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("scope", sa.String(length=16), nullable=False),
        sa.Column("scope_key", sa.String(length=160), nullable=False),
        sa.Column("owner_id", sa.Uuid(), nullable=True),
        sa.Column("project", sa.String(length=128), nullable=True),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("sealed", sa.LargeBinary(), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
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
            ["owner_id"], ["users.id"], name=op.f("fk_secrets_owner_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets")),
        sa.UniqueConstraint("scope_key", "name", name=op.f("uq_secrets_scope_key")),
    )
    op.create_index(op.f("ix_secrets_owner_id"), "secrets", ["owner_id"], unique=False)
    # A secret appears only with its event (secret.created) in the same transaction.
    for stmt in GUARD_SQL:
        op.execute(stmt)


def downgrade() -> None:
    for stmt in GUARD_DROP_SQL:
        op.execute(stmt)
    op.drop_index(op.f("ix_secrets_owner_id"), table_name="secrets")
    op.drop_table("secrets")
