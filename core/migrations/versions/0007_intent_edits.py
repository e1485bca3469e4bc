"""Reviewers' edits to the catalogue of intents: an overlay on models/catalogue.yaml.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "intent_edits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("intent", sa.String(length=100), nullable=False),
        sa.Column("new_name", sa.String(length=100), nullable=True),
        sa.Column("intent_group", sa.String(length=100), nullable=True),
        sa.Column("tone", sa.String(length=16), nullable=True),
        sa.Column("stance", sa.String(length=8), nullable=True),
        sa.Column("replies", sa.JSON(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "action IN ('add', 'add_reply', 'rename', 'disable', 'enable')",
            name="ck_intent_edits_action",
        ),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("intent_edits")
