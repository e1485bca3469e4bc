"""A throwaway PostgreSQL server for the tests: one cluster per test session, one database per
test.

The cluster lives in a temporary folder owned by the ``postgres`` user (initdb refuses to run
as root, so as root every server command goes through ``runuser -u postgres``), listens on
127.0.0.1 only, on a free port, and on a unix socket inside that folder. A random password
guards the TCP port. :meth:`PostgresServer.stop` shuts it down and deletes the folder; an
``atexit`` hook does the same if a session ends without calling it, and a cluster left behind
by a test process that was killed outright is stopped the next time a server starts.

Example:
    >>> with PostgresServer() as server:  # doctest: +SKIP
    ...     url = server.create_database("t1")  # postgresql+psycopg://...
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import psycopg
from psycopg import sql
from sqlalchemy.engine import URL

from webapp.launch import free_port

PREFIX = "replyguard-pg-"
USER = "postgres"
INSTALL_HINT = (
    "Install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`, "
    "or run scripts/system-deps.sh, which `make test` calls)"
)
# Durability buys nothing in a cluster that is deleted at the end of the session.
SERVER_CONFIG = """
listen_addresses = '127.0.0.1'
unix_socket_directories = '{socket_dir}'
unix_socket_permissions = 0700
fsync = off
synchronous_commit = off
full_page_writes = off
max_connections = 50
log_min_messages = warning
"""


class PostgresUnavailable(RuntimeError):
    """The server could not be found or started; the message says what to install or fix."""


def find_bindir() -> Path:
    """The newest PostgreSQL's bin folder with initdb, pg_ctl and postgres."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: [int(n) for n in re.findall(r"\d+", p)],
        reverse=True,
    )
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).resolve().parent))
    for directory in candidates:
        path = Path(directory)
        if all(os.access(path / tool, os.X_OK) for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    raise PostgresUnavailable(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) in /usr/lib/postgresql/*/bin "
        f"or on PATH. {INSTALL_HINT}."
    )


class PostgresServer:
    """A private PostgreSQL cluster: :meth:`start`, :meth:`create_database` per test, and
    :meth:`stop` (also a context manager)."""

    def __init__(self, bindir: Path | None = None, start_timeout: int = 30) -> None:
        self.bindir = bindir
        self.start_timeout = start_timeout
        self.root: Path | None = None
        self.port = 0
        self.password = secrets.token_hex(16)
        self._admin: psycopg.Connection | None = None
        self._as_root = os.geteuid() == 0

    # -- lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        assert self.root is not None, "the server is not started"
        return self.root / "server.log"

    def start(self) -> None:
        """initdb a fresh cluster in a temporary folder and start it; raise
        :class:`PostgresUnavailable` saying why if that cannot be done."""
        if self.root is not None:
            return
        if self.bindir is None:
            self.bindir = find_bindir()
        if self._as_root:
            self._check_user()
        reap_orphans(self)
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX))
        atexit.register(self.stop)
        try:
            # Who started this cluster: lets a later session stop it if we die unannounced.
            (self.root / "owner.pid").write_text(str(os.getpid()))
            self.socket_dir.mkdir()
            self._give_to_postgres(self.root, self.socket_dir)
            self._initdb()
            self._launch()
            self._admin = self._connect("postgres")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (fast, then immediate, then SIGKILL of its postmaster) and delete
        its folder. Safe to call twice."""
        atexit.unregister(self.stop)
        if self._admin is not None:
            with contextlib.suppress(Exception):
                self._admin.close()
            self._admin = None
        if self.root is None:
            return
        try:
            stop_cluster(self, self.data_dir)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    # -- databases ---------------------------------------------------------------------

    def url(self, database: str) -> str:
        return URL.create(
            "postgresql+psycopg",
            username=USER,
            password=self.password,
            host="127.0.0.1",
            port=self.port,
            database=database,
        ).render_as_string(hide_password=False)

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        self._admin_connection().execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
                sql.Identifier(name)
            )
        )
        return self.url(name)

    def drop_database(self, name: str) -> None:
        """Drop a database, disconnecting anyone still connected to it."""
        self._admin_connection().execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )

    def _admin_connection(self) -> psycopg.Connection:
        if self._admin is None or self._admin.closed:
            self._admin = self._connect("postgres")
        return self._admin

    def _connect(self, database: str) -> psycopg.Connection:
        return psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=self.password,
            dbname=database,
            autocommit=True,
            connect_timeout=10,
        )

    # -- internals ---------------------------------------------------------------------

    def command(self, tool: str, *args: str) -> list[str]:
        """A server command line, run as the postgres user when we are root."""
        assert self.bindir is not None
        line = [str(self.bindir / tool), *args]
        return ["runuser", "-u", USER, "--", *line] if self._as_root else line

    def run(self, tool: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.command(tool, *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )

    def _check_user(self) -> None:
        try:
            import pwd

            pwd.getpwnam(USER)
        except KeyError:
            raise PostgresUnavailable(
                f"running as root and there is no {USER!r} user to run the server as "
                f"(initdb refuses root). {INSTALL_HINT}: the package creates that user."
            ) from None
        if shutil.which("runuser") is None:
            raise PostgresUnavailable("running as root and `runuser` (util-linux) is missing")

    def _give_to_postgres(self, *paths: Path) -> None:
        if not self._as_root:
            return
        for path in paths:
            shutil.chown(path, USER, USER)
        probe = subprocess.run(
            ["runuser", "-u", USER, "--", "test", "-w", str(self.root)],
            capture_output=True,
            check=False,
        )
        if probe.returncode != 0:
            raise PostgresUnavailable(
                f"the {USER} user cannot write to {self.root}: set TMPDIR to a folder it can "
                "reach (for example /tmp)"
            )

    def _initdb(self) -> None:
        assert self.root is not None
        password_file = self.root / "password"
        password_file.write_text(self.password + "\n")
        password_file.chmod(0o600)
        self._give_to_postgres(password_file)
        try:
            result = self.run(
                "initdb",
                "--pgdata",
                str(self.data_dir),
                "--username",
                USER,
                "--pwfile",
                str(password_file),
                "--auth-local",
                "peer" if self._as_root else "trust",
                "--auth-host",
                "scram-sha-256",
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
                timeout=120,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            raise PostgresUnavailable(
                f"initdb failed (exit {result.returncode}):\n{result.stderr or result.stdout}"
            )
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write(SERVER_CONFIG.format(socket_dir=self.socket_dir))

    def _launch(self) -> None:
        """Start on a free port; try again on another if the port was taken meanwhile."""
        failure = ""
        for _ in range(3):
            self.port = free_port()
            result = self.run(
                "pg_ctl",
                "start",
                "--pgdata",
                str(self.data_dir),
                "--log",
                str(self.log_file),
                "--wait",
                "--timeout",
                str(self.start_timeout),
                "-o",
                f"-p {self.port}",
                timeout=self.start_timeout + 15,
            )
            if result.returncode == 0:
                return
            log = self.log_file.read_text(errors="replace") if self.log_file.exists() else ""
            failure = f"{result.stderr or result.stdout}\n{log[-3000:]}"
            stop_cluster(self, self.data_dir)
            if "already in use" not in log:
                break
        raise PostgresUnavailable(f"the PostgreSQL server did not start:\n{failure}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_cluster(server: PostgresServer, data_dir: Path) -> None:
    """Stop the cluster in ``data_dir`` if it runs: fast, then immediate, then SIGKILL."""
    pid_file = data_dir / "postmaster.pid"
    try:
        pid = int(pid_file.read_text().splitlines()[0])
    except (OSError, ValueError, IndexError):
        return
    for mode in ("fast", "immediate"):
        with contextlib.suppress(subprocess.TimeoutExpired):
            server.run("pg_ctl", "stop", "--pgdata", str(data_dir), "--mode", mode, "--wait")
        if not pid_file.exists():
            break
    else:
        # Last resort: the postmaster we started, by the pid it wrote; only while that pid is
        # still a process running in this cluster's folder, never one that reused the number.
        with contextlib.suppress(OSError):
            if pid > 1 and Path(f"/proc/{pid}/cwd").resolve() == data_dir.resolve():
                os.kill(pid, signal.SIGKILL)
    # pg_ctl daemonized the postmaster, so init reaps it: wait until it is gone for good, so
    # that nothing (not even a zombie) outlives the session.
    deadline = time.monotonic() + 5
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)


def reap_orphans(server: PostgresServer) -> None:
    """Stop and delete clusters of ours (``PREFIX`` folders) whose test process is gone."""
    for folder in Path(tempfile.gettempdir()).glob(PREFIX + "*"):
        owner = folder / "owner.pid"
        try:
            pid = int(owner.read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(pid):
            continue
        stop_cluster(server, folder / "data")
        shutil.rmtree(folder, ignore_errors=True)
