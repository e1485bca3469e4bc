"""Engine, sessions and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from contextlib import nullcontext
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from filelock import FileLock
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import text
from sqlalchemy.orm import Session
from sqlalchemy.orm import sessionmaker

from core.settings import CoreSettings

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# The PostgreSQL advisory lock key of schema migrations (any constant; "Reply" in ASCII).
MIGRATION_LOCK = 0x5265706C79


class Database:
    """One engine and session factory per process; created from settings, never at import."""

    def __init__(self, settings: CoreSettings) -> None:
        self.settings = settings
        self.url = settings.database
        if self.url.startswith("sqlite"):
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(self.url, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(self.url, pool_pre_ping=True)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on any error."""
        with self.sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        """Bring the schema to the newest migration (safe to run on every start, by any
        number of processes at once).

        Every process migrates when it starts (each gunicorn worker, each Celery worker, the
        command line), so two may find the database one migration behind at the same moment.
        They migrate one at a time: the second reads the version only once the first has
        committed, and finds nothing to do. Without this a gunicorn worker died with "table
        generation_stages already exists" in one of three starts of two workers, and the
        server with it. SQLite: a file lock beside the database (filelock); PostgreSQL: a
        transaction-level advisory lock, released at commit.
        """
        with self._migration_lock(), self.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK}
                )
            config = alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def _migration_lock(self) -> AbstractContextManager[object]:
        path = self.engine.url.database if self.engine.dialect.name == "sqlite" else None
        if not path or path == ":memory:":
            return nullcontext()
        return FileLock(f"{path}.migrate.lock")

    def dispose(self) -> None:
        self.engine.dispose()


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the web server read while a worker writes; foreign keys are off by default.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
