"""Close two gaps in the database guards.

- SQLite: the reservoir trigger covered INSERT only; an UPDATE could point a reservoir row at
  a synthetic example.
- PostgreSQL: TRUNCATE bypasses row triggers, so it could empty the audit log.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from alembic import op

from core.migrations.guards import AUDIT_MESSAGE
from core.migrations.guards import RESERVOIR_MESSAGE

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"""
            CREATE FUNCTION replyguard_audit_no_truncate() RETURNS trigger AS $$
            BEGIN RAISE EXCEPTION '{AUDIT_MESSAGE}'; END $$ LANGUAGE plpgsql
            """
        )
        op.execute(
            """
            CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
            FOR EACH STATEMENT EXECUTE FUNCTION replyguard_audit_no_truncate()
            """
        )
        return
    op.execute(
        f"""
        CREATE TRIGGER reservoir_human_only_update
        BEFORE UPDATE ON reservoir
        WHEN (SELECT provenance FROM examples WHERE id = NEW.example_id) IS NOT 'human'
        BEGIN SELECT RAISE(ABORT, '{RESERVOIR_MESSAGE}'); END
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log")
        op.execute("DROP FUNCTION IF EXISTS replyguard_audit_no_truncate()")
        return
    op.execute("DROP TRIGGER IF EXISTS reservoir_human_only_update")
