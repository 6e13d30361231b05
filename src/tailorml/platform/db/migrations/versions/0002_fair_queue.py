"""fair queue: jobs.priority, jobs.claimed_at and per-tenant indexes

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02 09:00:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        # server_default so rows queued before the upgrade get priority 0, not NULL.
        batch_op.add_column(sa.Column("priority", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("claimed_at", sa.Float(), nullable=True))
        batch_op.create_index("ix_jobs_tenant_status", ["tenant_id", "status"], unique=False)
        batch_op.create_index("ix_jobs_tenant_claimed", ["tenant_id", "claimed_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_jobs_tenant_claimed")
        batch_op.drop_index("ix_jobs_tenant_status")
        batch_op.drop_column("claimed_at")
        batch_op.drop_column("priority")
