"""Database triggers that keep the promises no code path may break.

- provenance (and the generation/model version that wrote a synthetic row) never changes;
- only human-written examples enter the protected reservoir;
- the audit log is append-only.

The ORM refuses these too; the triggers make raw SQL and other clients refuse them as well.
"""

from __future__ import annotations

from alembic import op

PROVENANCE_MESSAGE = "provenance is immutable"
RESERVOIR_MESSAGE = "only human examples may enter the reservoir"
AUDIT_MESSAGE = "the audit log is append-only"

_SQLITE = [
    f"""
    CREATE TRIGGER examples_provenance_immutable
    BEFORE UPDATE OF provenance, generation, model_version ON examples
    WHEN NEW.provenance IS NOT OLD.provenance
      OR NEW.generation IS NOT OLD.generation
      OR NEW.model_version IS NOT OLD.model_version
    BEGIN SELECT RAISE(ABORT, '{PROVENANCE_MESSAGE}'); END
    """,
    f"""
    CREATE TRIGGER reservoir_human_only
    BEFORE INSERT ON reservoir
    WHEN (SELECT provenance FROM examples WHERE id = NEW.example_id) IS NOT 'human'
    BEGIN SELECT RAISE(ABORT, '{RESERVOIR_MESSAGE}'); END
    """,
    f"""
    CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}'); END
    """,
    f"""
    CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, '{AUDIT_MESSAGE}'); END
    """,
]

_POSTGRES = [
    f"""
    CREATE FUNCTION replyguard_provenance_immutable() RETURNS trigger AS $$
    BEGIN
      IF NEW.provenance IS DISTINCT FROM OLD.provenance
         OR NEW.generation IS DISTINCT FROM OLD.generation
         OR NEW.model_version IS DISTINCT FROM OLD.model_version THEN
        RAISE EXCEPTION '{PROVENANCE_MESSAGE}';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER examples_provenance_immutable BEFORE UPDATE ON examples
    FOR EACH ROW EXECUTE FUNCTION replyguard_provenance_immutable()
    """,
    f"""
    CREATE FUNCTION replyguard_reservoir_human_only() RETURNS trigger AS $$
    BEGIN
      IF (SELECT provenance FROM examples WHERE id = NEW.example_id)
         IS DISTINCT FROM 'human' THEN
        RAISE EXCEPTION '{RESERVOIR_MESSAGE}';
      END IF;
      RETURN NEW;
    END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER reservoir_human_only BEFORE INSERT OR UPDATE ON reservoir
    FOR EACH ROW EXECUTE FUNCTION replyguard_reservoir_human_only()
    """,
    f"""
    CREATE FUNCTION replyguard_audit_append_only() RETURNS trigger AS $$
    BEGIN RAISE EXCEPTION '{AUDIT_MESSAGE}'; END $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION replyguard_audit_append_only()
    """,
]


def create_guards() -> None:
    dialect = op.get_bind().dialect.name
    for statement in _POSTGRES if dialect == "postgresql" else _SQLITE:
        op.execute(statement)


def drop_guards() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log")
        op.execute("DROP TRIGGER IF EXISTS reservoir_human_only ON reservoir")
        op.execute("DROP TRIGGER IF EXISTS examples_provenance_immutable ON examples")
        for name in ("audit_append_only", "reservoir_human_only", "provenance_immutable"):
            op.execute(f"DROP FUNCTION IF EXISTS replyguard_{name}()")
        return
    for name in (
        "audit_log_no_delete",
        "audit_log_no_update",
        "reservoir_human_only",
        "examples_provenance_immutable",
    ):
        op.execute(f"DROP TRIGGER IF EXISTS {name}")
