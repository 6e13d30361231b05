"""key scopes, expiry and last use

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 05:15:00.000000
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        # server_default so keys made before the upgrade keep today's behaviour: scope "all".
        batch_op.add_column(
            sa.Column("scope", sa.String(length=16), nullable=False, server_default="all")
        )
        batch_op.add_column(sa.Column("expires_at", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("last_used_at", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("last_used_at")
        batch_op.drop_column("expires_at")
        batch_op.drop_column("scope")
