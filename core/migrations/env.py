"""Alembic environment: runs on the connection that core.db hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection
from sqlalchemy import create_engine

from core.schema import Base

config = context.config
target_metadata = Base.metadata


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _migrate(connection)
        return
    # Called from the alembic command line (for autogenerate) with a URL instead.
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    with engine.begin() as conn:
        _migrate(conn)


def _migrate(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run()
