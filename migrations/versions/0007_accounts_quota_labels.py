"""accounts, quotas per account and per node label, a stored pending-group key, shared
reservations

Tasks get an optional ``account`` (fair share, quotas and usage per account). Quotas get an id,
an optional account instead of a user, and an optional node label. ``tasks.group_key`` (a
generated column) with a partial index lets a pass group pending tasks without sorting them.
Reservations move from each instance's memory to ``scheduling_reservations``.

Revision ID: 0007_accounts_quota_labels
Revises: 0006_events_txid_subject
Create Date: 2026-11-30 17:40:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_accounts_quota_labels"
down_revision = "0006_events_txid_subject"
branch_labels = None
depends_on = None

ACCOUNT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$"
GROUP_KEY_SQL = (  # as unidesk.core.tasks.models.GROUP_KEY_SQL at this revision
    "md5(coalesce(owner_id::text, '') || '|' || coalesce(account, '') || '|' || cpus::text"
    " || '|' || memory_mb::text || '|' || gpus::text || '|' || labels::text"
    " || '|' || coalesce(gpu_model, '') || '|' || coalesce(gpu_memory_mb, 0)::text"
    " || '|' || avoid_node_ids::text || '|' || coalesce(extra->>'runtime', '')"
    " || '|' || coalesce(extra->>'node_id', '') || '|' || coalesce(extra->>'kind', '')"
    " || '|' || coalesce(extra#>>'{params,op}', '')"
    " || '|' || coalesce(extra->'host_mounts', '[]'::jsonb)::text)"
)


def upgrade() -> None:
    op.add_column("tasks", sa.Column("account", sa.String(length=64), nullable=True))
    op.create_check_constraint("account_name", "tasks", f"account ~ '{ACCOUNT_PATTERN}'")
    op.add_column(
        "tasks", sa.Column("group_key", sa.Text(), sa.Computed(GROUP_KEY_SQL, persisted=True))
    )
    op.create_index(
        "ix_tasks_pending_groups",
        "tasks",
        ["group_key", sa.text("priority DESC"), "seq"],
        postgresql_include=["not_before"],
        postgresql_where=sa.text("state = 'pending'"),
    )
    op.add_column(
        "scheduling_quotas",
        sa.Column("id", sa.Uuid(), server_default=sa.text("gen_random_uuid()"), nullable=False),
    )
    op.alter_column("scheduling_quotas", "id", server_default=None)
    op.drop_constraint("pk_scheduling_quotas", "scheduling_quotas", type_="primary")
    op.create_primary_key("pk_scheduling_quotas", "scheduling_quotas", ["id"])
    op.alter_column("scheduling_quotas", "user_id", nullable=True)
    op.add_column("scheduling_quotas", sa.Column("account", sa.String(length=64), nullable=True))
    op.add_column(
        "scheduling_quotas",
        sa.Column("label", sa.String(length=200), server_default="", nullable=False),
    )
    op.create_check_constraint(
        "one_subject", "scheduling_quotas", "(user_id IS NULL) <> (account IS NULL)"
    )
    op.create_index(
        "ux_scheduling_quotas_user_label",
        "scheduling_quotas",
        ["user_id", "label"],
        unique=True,
        postgresql_where=sa.text("user_id IS NOT NULL"),
    )
    op.create_index(
        "ux_scheduling_quotas_account_label",
        "scheduling_quotas",
        ["account", "label"],
        unique=True,
        postgresql_where=sa.text("account IS NOT NULL"),
    )
    op.create_table(
        "scheduling_reservations",
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.Column("node_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"],
            ["tasks.id"],
            name=op.f("fk_scheduling_reservations_task_id_tasks"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["nodes.id"],
            name=op.f("fk_scheduling_reservations_node_id_nodes"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("task_id", name=op.f("pk_scheduling_reservations")),
    )


def downgrade() -> None:
    op.drop_table("scheduling_reservations")
    op.drop_index("ux_scheduling_quotas_account_label", table_name="scheduling_quotas")
    op.drop_index("ux_scheduling_quotas_user_label", table_name="scheduling_quotas")
    op.drop_constraint("ck_scheduling_quotas_one_subject", "scheduling_quotas", type_="check")
    op.execute("DELETE FROM scheduling_quotas WHERE user_id IS NULL OR label <> ''")
    op.drop_column("scheduling_quotas", "label")
    op.drop_column("scheduling_quotas", "account")
    op.alter_column("scheduling_quotas", "user_id", nullable=False)
    op.drop_constraint("pk_scheduling_quotas", "scheduling_quotas", type_="primary")
    op.create_primary_key("pk_scheduling_quotas", "scheduling_quotas", ["user_id"])
    op.drop_column("scheduling_quotas", "id")
    op.drop_index("ix_tasks_pending_groups", table_name="tasks")
    op.drop_column("tasks", "group_key")
    op.drop_constraint("ck_tasks_account_name", "tasks", type_="check")
    op.drop_column("tasks", "account")
