"""A throwaway PostgreSQL server for the tests: pytest-postgresql's executor, one cluster per
test session and one database per test.

pytest-postgresql runs ``pg_ctl`` (initdb, start, status, stop) and its janitor creates and
drops the databases. What it cannot do here, this module adds:

- As root, ``pg_ctl`` refuses to run (initdb would not run as root either), so the executor is
  given a two-line wrapper that runs it as the ``postgres`` user through ``runuser``, and the
  cluster's folder is given to that user.
- The executor initialises a trust cluster (its password file would be unreadable by the
  ``postgres`` user); our ``pg_hba.conf`` then requires a random password on TCP
  (scram-sha-256), set over the unix socket, whose folder only the server's user can open. The
  tests so reach the server the way production does: over TCP with a password in the URL.

Example:
    >>> with postgres_server() as server:  # doctest: +SKIP
    ...     with database(server, "t1") as url:  # postgresql+psycopg://postgres:...@127.0.0.1
    ...         ...
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
from psycopg import sql
from pytest_postgresql.executors import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor
from sqlalchemy.engine import URL

from webapp.launch import free_port

USER = "postgres"
INSTALL_HINT = (
    "Install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`, "
    "or run scripts/system-deps.sh, which `make test` calls)"
)
# The socket's folder is the server user's alone (0700): trust there lets us set the password.
HBA = """
local all {user} trust
host all all 127.0.0.1/32 scram-sha-256
"""
# Durability buys nothing in a cluster that is deleted at the end of the session.
SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c synchronous_commit=off -c full_page_writes=off "
    "-c max_connections=50 -c log_min_messages=warning -c hba_file={hba}"
)


class PostgresUnavailable(RuntimeError):
    """The server could not be found or started; the message says what to install or fix."""


def find_pg_ctl() -> Path:
    """The newest installed PostgreSQL's ``pg_ctl``: Debian keeps it in
    ``/usr/lib/postgresql/<major>/bin`` (off PATH), other systems on PATH.

    Raises:
        PostgresUnavailable: no PostgreSQL server is installed.
    """
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: [int(n) for n in re.findall(r"\d+", str(path))],
    )
    found = [*reversed(debian), *filter(None, [shutil.which("pg_ctl")])]
    if not found:
        raise PostgresUnavailable(f"no PostgreSQL server (pg_ctl). {INSTALL_HINT}.")
    return Path(found[0])


@contextlib.contextmanager
def postgres_server() -> Iterator[PostgreSQLExecutor]:
    """Start a private cluster on 127.0.0.1 (a free port) in a temporary folder; stop it and
    delete the folder on exit. The executor's ``password`` is the TCP password.

    Raises:
        PostgresUnavailable: no server is installed, or (as root) no ``postgres`` user or
            ``runuser`` to run it as.
    """
    pg_ctl = find_pg_ctl()
    as_root = os.geteuid() == 0
    if as_root and (shutil.which("runuser") is None or not _user_exists(USER)):
        raise PostgresUnavailable(
            f"running as root needs `runuser` and a {USER!r} user to run the server as. "
            f"{INSTALL_HINT}: the package creates that user."
        )
    root = Path(tempfile.mkdtemp(prefix="replyguard-pg-"))
    try:
        server = _start(root, pg_ctl, as_root)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(root: Path, pg_ctl: Path, as_root: bool) -> PostgreSQLExecutor:
    """initdb and start a cluster in ``root``, then require a new random password on TCP."""
    (root / "run").mkdir(mode=0o700)
    hba = root / "pg_hba.conf"
    hba.write_text(HBA.format(user=USER))
    if as_root:
        wrapper = root / "pg_ctl"
        wrapper.write_text(f'#!/bin/sh\nexec runuser -u {USER} -- {pg_ctl} "$@"\n')
        wrapper.chmod(0o755)
        pg_ctl = wrapper
        for path in (root, root / "run", hba):
            shutil.chown(path, USER, USER)
    server = PostgreSQLExecutor(
        executable=str(pg_ctl),
        host="127.0.0.1",
        port=free_port(),
        datadir=str(root / "data"),
        unixsocketdir=str(root / "run"),
        logfile=str(root / "server.log"),
        startparams="-w",
        dbname="postgres",
        user=USER,
        postgres_options=SERVER_OPTIONS.format(hba=hba),
    )
    try:
        server.start()
        server.password = secrets.token_hex(16)
        with _first_connection(server) as admin:
            admin.execute(
                sql.SQL("ALTER USER {} PASSWORD {}").format(
                    sql.Identifier(USER), sql.Literal(server.password)
                )
            )
    except Exception as exc:
        with contextlib.suppress(Exception):
            server.stop()
        log = root / "server.log"
        detail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise PostgresUnavailable(f"the PostgreSQL server did not start: {exc}\n{detail}") from exc
    return server


def _first_connection(server: PostgreSQLExecutor, wait: float = 60) -> psycopg.Connection:
    """The first connection to a server just started. pytest-postgresql's start returns once
    the postmaster runs, which can be before it accepts connections: on a loaded machine
    the first connection got "the database system is starting up" 20 ms before the server
    logged it was ready (and every PostgreSQL test then errored). Retried for ``wait`` s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return psycopg.connect(
                host=server.unixsocketdir, port=server.port, user=USER, dbname="postgres"
            )
        except psycopg.OperationalError as exc:
            if "starting up" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextlib.contextmanager
def database(server: PostgreSQLExecutor, name: str) -> Iterator[str]:
    """An empty database ``name`` on ``server`` for the block; yields its SQLAlchemy URL and
    drops it afterwards (disconnecting anyone still connected)."""
    janitor = DatabaseJanitor(
        user=USER, host=server.host, port=server.port, dbname=name, password=server.password
    )
    with janitor:
        yield URL.create(
            "postgresql+psycopg",
            username=USER,
            password=server.password,
            host=server.host,
            port=server.port,
            database=name,
        ).render_as_string(hide_password=False)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True
