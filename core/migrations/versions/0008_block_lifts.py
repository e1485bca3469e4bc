"""A block can be lifted: when, by whom and why (the row stays, for the record).

Revision ID: 0008
Revises: 0007 (0007_intent_edits)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reply_blocks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("lifted_by", sa.String(length=100), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("lift_reason", sa.Text(), nullable=False, server_default=""))


def downgrade() -> None:
    with op.batch_alter_table("reply_blocks", schema=None) as batch_op:
        batch_op.drop_column("lift_reason")
        batch_op.drop_column("lifted_by")
        batch_op.drop_column("lifted_at")
