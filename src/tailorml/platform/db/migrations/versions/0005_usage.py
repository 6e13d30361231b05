"""usage metering, tenant quotas and shared rate-limit counters

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "usage_buckets",
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("model", sa.String(length=255), nullable=False),
        sa.Column("minute", sa.Integer(), nullable=False),
        sa.Column("requests", sa.BigInteger(), nullable=False),
        sa.Column("prompt_tokens", sa.BigInteger(), nullable=False),
        sa.Column("completion_tokens", sa.BigInteger(), nullable=False),
        sa.Column("training_tokens", sa.BigInteger(), nullable=False),
        sa.Column("compute_seconds", sa.Float(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "kind", "model", "minute"),
    )
    op.create_index("ix_usage_buckets_tenant_minute", "usage_buckets", ["tenant_id", "minute"])
    op.create_table(
        "tenant_quotas",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("tenant_id", sa.String(length=40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("metric", sa.String(length=32), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("limit", sa.Float(), nullable=False),
        sa.Column("created_at", sa.Integer(), nullable=False),
        sa.UniqueConstraint("tenant_id", "metric", "period", "kind", name="uq_tenant_quotas"),
    )
    op.create_index("ix_tenant_quotas_tenant_id", "tenant_quotas", ["tenant_id"])
    op.create_table(
        "rate_counters",
        sa.Column("key", sa.String(length=200), primary_key=True),
        sa.Column("tat", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("rate_counters")
    op.drop_index("ix_tenant_quotas_tenant_id", table_name="tenant_quotas")
    op.drop_table("tenant_quotas")
    op.drop_index("ix_usage_buckets_tenant_minute", table_name="usage_buckets")
    op.drop_table("usage_buckets")
