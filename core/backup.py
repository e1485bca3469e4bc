"""Backups: the database half, the backup folder and its manifest.

A backup folder holds a consistent copy of the database, the model artifacts it refers to
(copied by models/backup.py, which composes the whole backup and restore), and
``manifest.json``:

- SQLite: a copy made with SQLite's online backup API in one step, so it is one read
  transaction of the live database (writers go on meanwhile; WAL mode) and no later write is
  half in it. Saved as a standalone file (journal mode DELETE).
- PostgreSQL: ``pg_dump`` in its custom format, run on a snapshot exported from the
  transaction in which the list of model artifacts is read, so the dump and the artifacts
  copied belong to the same instant. Restored by ``pg_restore`` writing the SQL script and
  ``psql`` running it in one transaction that first empties the database's ``public``
  schema: it replaces everything or changes nothing.

The manifest (format, creation time, database kind and Alembic revision, every file's sha256
and size, the artifacts) is written last and atomically: a folder without it is a partial
backup, and restore refuses it.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import closing
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from pathlib import PurePosixPath
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import Connection
from sqlalchemy import create_engine
from sqlalchemy import func
from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy import table
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from core.actions import Conflict
from core.db import alembic_config
from core.files import BLOCK
from core.files import atomic_write
from core.files import fsync_path
from core.files import sha256_file
from core.processes import live_processes
from core.schema import ModelStatus
from core.schema import ModelVersion
from core.settings import CoreSettings

FORMAT = 1
KIND = "replyguard-backup"
MANIFEST = "manifest.json"
# The database's file in a backup folder, by database kind.
DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
# Folders of the data folder that belong to one database's history: restore replaces them.
DATA_FOLDERS = ("models", "generations")
# Every object of ReplyGuard's schema lives in the database's public schema (the migrations
# create nothing elsewhere); emptying it first lets an older backup restore into a database
# that a newer version has migrated. Functions of extensions are left alone.
_EMPTY_PUBLIC_SCHEMA = """
DO $$
DECLARE item record;
BEGIN
  FOR item IN SELECT format('%I.%I', schemaname, viewname) AS name
              FROM pg_views WHERE schemaname = 'public' LOOP
    EXECUTE 'DROP VIEW IF EXISTS ' || item.name || ' CASCADE';
  END LOOP;
  FOR item IN SELECT format('%I.%I', schemaname, tablename) AS name
              FROM pg_tables WHERE schemaname = 'public' LOOP
    EXECUTE 'DROP TABLE IF EXISTS ' || item.name || ' CASCADE';
  END LOOP;
  FOR item IN SELECT format('%I.%I', sequence_schema, sequence_name) AS name
              FROM information_schema.sequences WHERE sequence_schema = 'public' LOOP
    EXECUTE 'DROP SEQUENCE IF EXISTS ' || item.name || ' CASCADE';
  END LOOP;
  FOR item IN SELECT p.oid::regprocedure::text AS name FROM pg_proc p
              WHERE p.pronamespace = 'public'::regnamespace
                AND NOT EXISTS (SELECT 1 FROM pg_depend d
                                WHERE d.objid = p.oid AND d.deptype = 'e') LOOP
    EXECUTE 'DROP FUNCTION IF EXISTS ' || item.name || ' CASCADE';
  END LOOP;
END $$;
"""


class BackupError(Conflict):
    """A backup cannot be made, or a backup folder cannot be restored; the message says what
    is wrong and what to do. A failed backup leaves no folder behind; a refused restore has
    changed nothing."""

    code = "backup_refused"


@dataclass(frozen=True)
class ArtifactRef:
    """A model version's artifact as the database records it."""

    version: str
    # Relative to the data folder, POSIX separators: "models/v3".
    path: str
    # sha256 of the artifact's own manifest.json.
    checksum: str
    status: str


@dataclass(frozen=True)
class Snapshot:
    """What one consistent copy of the database holds.

    ``counts`` maps every table (Alembic's included) to its rows.
    """

    kind: str
    alembic_revision: str | None
    artifacts: tuple[ArtifactRef, ...]
    production: str | None
    counts: dict[str, int]


# ---------------------------------------------------------------------------------------
# The database


def database_kind(settings: CoreSettings) -> str:
    """ "sqlite" or "postgresql"; raises BackupError for any other database URL."""
    kind = make_url(settings.database).get_backend_name()
    if kind not in DATABASE_FILES:
        raise BackupError(f"backups support SQLite and PostgreSQL, not {kind}")
    return kind


def snapshot_database(settings: CoreSettings, target: Path) -> Snapshot:
    """Copy the live database into the folder ``target`` (file ``DATABASE_FILES[kind]``)
    and return what the copy holds. Raises BackupError when the database cannot be read or
    ``pg_dump`` is missing or fails."""
    kind = database_kind(settings)
    destination = target / DATABASE_FILES[kind]
    if kind == "sqlite":
        source = sqlite_path(settings)
        if not source.is_file():
            raise BackupError(f"no database at {source}: there is nothing to back up")
        try:
            with (
                closing(sqlite3.connect(source, timeout=30)) as live,
                closing(sqlite3.connect(destination)) as copy,
            ):
                # One step: a single read transaction, never restarted by a writer.
                live.backup(copy)
                copy.execute("PRAGMA journal_mode=DELETE")
        except sqlite3.Error as exc:
            raise BackupError(f"cannot copy {source}: {exc}") from None
        return describe_sqlite(destination)
    pg_dump = _tool("pg_dump")
    conninfo, env = libpq(settings)
    engine = create_engine(settings.database)
    try:
        with (
            engine.connect().execution_options(isolation_level="REPEATABLE READ") as connection,
            connection.begin(),
        ):
            snapshot_id = connection.scalar(text("SELECT pg_export_snapshot()"))
            snapshot = _describe(connection, kind)
            # The transaction stays open until pg_dump has imported its snapshot.
            _run(
                [
                    pg_dump,
                    "--format=custom",
                    "--no-owner",
                    "--no-privileges",
                    f"--snapshot={snapshot_id}",
                    f"--file={destination}",
                    f"--dbname={conninfo}",
                ],
                env,
                "pg_dump",
            )
    except SQLAlchemyError as exc:
        raise BackupError(f"cannot read the database: {exc}") from None
    finally:
        engine.dispose()
    return snapshot


def describe_sqlite(path: Path) -> Snapshot:
    """What a SQLite file holds (opened read-only; raises BackupError if it is damaged)."""
    engine = create_engine("sqlite://", creator=lambda: _read_only(path))
    try:
        with engine.connect() as connection:
            check = connection.scalar(text("PRAGMA integrity_check"))
            if check != "ok":
                raise BackupError(f"{path.name} is damaged (SQLite integrity check: {check})")
            return _describe(connection, "sqlite")
    except SQLAlchemyError as exc:
        raise BackupError(f"{path.name} is not a readable SQLite database ({exc})") from None
    finally:
        engine.dispose()


def _describe(connection: Connection, kind: str) -> Snapshot:
    names = sorted(inspect(connection).get_table_names())
    counts = {
        name: int(connection.scalar(select(func.count()).select_from(table(name))) or 0)
        for name in names
    }
    revision = None
    if "alembic_version" in names:
        revision = connection.scalar(text("SELECT version_num FROM alembic_version"))
    artifacts: tuple[ArtifactRef, ...] = ()
    production = None
    if "model_versions" in names:
        rows = connection.execute(
            select(
                ModelVersion.version,
                ModelVersion.artifact_path,
                ModelVersion.checksum,
                ModelVersion.status,
            ).order_by(ModelVersion.id)
        ).all()
        artifacts = tuple(ArtifactRef(*row) for row in rows if row.artifact_path)
        production = next((r.version for r in rows if r.status == ModelStatus.PRODUCTION), None)
    return Snapshot(kind, revision, artifacts, production, counts)


def holds_data(settings: CoreSettings) -> list[str]:
    """What restoring into ``settings``' database and data folder would overwrite: one line
    per non-empty table and per non-empty folder of :data:`DATA_FOLDERS`; empty when there is
    nothing. Raises BackupError when the database cannot be reached."""
    found: list[str] = []
    kind = database_kind(settings)
    if kind == "postgresql" or sqlite_path(settings).is_file():
        engine = create_engine(settings.database)
        try:
            with engine.connect() as connection:
                counts = _describe(connection, kind).counts
        except SQLAlchemyError as exc:
            raise BackupError(f"cannot read the target database: {exc}") from None
        finally:
            engine.dispose()
        rows = {n: c for n, c in counts.items() if c and n != "alembic_version"}
        if rows:
            tables = ", ".join(f"{name} {count}" for name, count in rows.items())
            found.append(f"the {kind} database (rows: {tables})")
    for name in DATA_FOLDERS:
        folder = settings.data_dir / name
        entries = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
        if entries:
            shown = ", ".join(entries[:8]) + (", ..." if len(entries) > 8 else "")
            found.append(f"{folder} ({len(entries)} entries: {shown})")
    return found


def in_use(settings: CoreSettings) -> list[str]:
    """What is using ``settings``' data folder now, one line each: every live process of the
    service on record there (web servers and their workers, Celery workers, beat, Flower,
    `replyguard run`: core/processes.py), and every generation whose stage lock a live
    process holds (worker/runs.py stage_guard). Empty when nothing is."""
    found = [str(p) for p in live_processes(settings.data_dir)]
    generations = settings.data_dir / "generations"
    for lock in sorted(generations.glob("*/stage.lock")) if generations.is_dir() else []:
        fd = os.open(lock, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            found.append(f"a worker running a stage of generation id {lock.parent.name}")
        finally:
            os.close(fd)
    return found


def refuse_while_in_use(settings: CoreSettings) -> None:
    """Raise BackupError, naming each, while any process uses the data folder (:func:`in_use`):
    a restore replaces the database and removes ``models/`` and ``generations/`` under them
    (a worker training generation 4 once had its folder deleted and then wrote into the
    restored database)."""
    users = in_use(settings)
    if users:
        raise BackupError(
            f"the service is running on {settings.data_dir.resolve()}: "
            + "; ".join(users)
            + ". Nothing was changed. Stop them first (Ctrl-C `replyguard run`; stop `replyguard "
            "serve` and `replyguard worker`; under Docker Compose `docker compose stop web "
            "worker notifier beat flower`), then restore"
        )


def check_database_copy(source: Path, manifest: dict[str, Any]) -> Snapshot | None:
    """Check that the backup's database file can be restored: a SQLite copy passes its
    integrity check (its snapshot is returned), a dump is one ``pg_restore`` can read
    (None: a dump is not read further). Raises BackupError."""
    kind = manifest["database"]["kind"]
    path = source / DATABASE_FILES[kind]
    if kind == "sqlite":
        return describe_sqlite(path)
    _run([_tool("pg_restore"), "--list", str(path)], None, "pg_restore --list")
    return None


def restore_database(settings: CoreSettings, source: Path, manifest: dict[str, Any]) -> None:
    """Replace the database's whole content with the backup's, in one transaction: on any
    error it is left as it was. Raises BackupError, also while the service is running on
    the data folder (:func:`refuse_while_in_use`: checked here, before the first change, for
    every caller)."""
    refuse_while_in_use(settings)
    kind = manifest["database"]["kind"]
    path = source / DATABASE_FILES[kind]
    if kind == "sqlite":
        target = sqlite_path(settings)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with (
                closing(_read_only(path)) as copy,
                closing(sqlite3.connect(target, timeout=30)) as live,
            ):
                # The backup API writes the copy into the live file under its locks (WAL
                # included), all pages in one step.
                copy.backup(live)
        except sqlite3.Error as exc:
            raise BackupError(f"cannot write {target}: {exc}") from None
        return
    pg_restore, psql = _tool("pg_restore"), _tool("psql")
    conninfo, env = libpq(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".restore-sql-", dir=settings.data_dir) as work:
        # The whole script first: psql reading a pipe whose writer died would commit the
        # half it got.
        script = Path(work) / "restore.sql"
        _run(
            [pg_restore, "--no-owner", "--no-privileges", f"--file={script}", str(path)],
            None,
            "pg_restore",
        )
        applied = subprocess.run(
            [
                psql,
                "--no-psqlrc",
                "--quiet",
                "--set=ON_ERROR_STOP=1",
                "--single-transaction",
                f"--command={_EMPTY_PUBLIC_SCHEMA}",
                f"--file={script}",
                f"--dbname={conninfo}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            check=False,
        )
    if applied.returncode != 0:
        raise BackupError(
            f"restoring the dump failed and was rolled back: {applied.stderr.strip()}"
        )


def _read_only(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)


def sqlite_path(settings: CoreSettings) -> Path:
    return Path(make_url(settings.database).database or "")


def libpq(settings: CoreSettings) -> tuple[str, dict[str, str]]:
    """The database URL as a libpq connection URI without its password, and an environment
    that passes the password as PGPASSWORD (so it never shows in a process list)."""
    url = make_url(settings.database)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    plain = url.set(drivername="postgresql", password=None)
    return plain.render_as_string(hide_password=False), env


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not on PATH: install the PostgreSQL client tools of the server's major "
            "version or newer (Debian: apt-get install postgresql-client)"
        )
    return path


def _run(command: list[str], env: dict[str, str] | None, what: str) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise BackupError(f"{what} failed (exit {result.returncode}): {result.stderr.strip()}")


# ---------------------------------------------------------------------------------------
# The folder and its manifest


@contextmanager
def new_backup_folder(target: Path) -> Iterator[Path]:
    """Create ``target`` (or take it empty) for a backup; on any error inside the block,
    remove everything written into it. Raises BackupError for a folder with files in it."""
    existed = target.exists()
    if existed and (not target.is_dir() or any(target.iterdir())):
        raise BackupError(f"{target} exists and is not empty: give a new folder for the backup")
    target.mkdir(parents=True, exist_ok=True)
    try:
        yield target
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        if existed:
            target.mkdir(exist_ok=True)
        raise


def copy_file(source: Path, destination: Path, progress: Callable[[int], object]) -> dict[str, Any]:
    """Copy a file, fsynced, hashing it on the way; return its manifest entry
    ``{"sha256", "size"}``. ``progress`` gets the bytes of each block copied."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    with source.open("rb") as reader, destination.open("wb") as writer:
        for block in iter(lambda: reader.read(BLOCK), b""):
            writer.write(block)
            digest.update(block)
            size += len(block)
            progress(len(block))
        writer.flush()
        os.fsync(writer.fileno())
    return {"sha256": digest.hexdigest(), "size": size}


def file_entry(path: Path, progress: Callable[[int], object]) -> dict[str, Any]:
    """The manifest entry of a file already in the backup folder."""
    return {"sha256": sha256_file(path, progress), "size": path.stat().st_size}


def write_manifest(target: Path, snapshot: Snapshot, files: dict[str, Any]) -> dict[str, Any]:
    """Write ``manifest.json`` atomically (a temporary file, fsynced, renamed, the folder
    fsynced); return it. Call it last: its presence says the backup is complete."""
    manifest = {
        "format": FORMAT,
        "kind": KIND,
        "created_at": dt.datetime.now(dt.UTC).isoformat(),
        "database": {
            "kind": snapshot.kind,
            "file": DATABASE_FILES[snapshot.kind],
            "alembic_revision": snapshot.alembic_revision,
        },
        "production": snapshot.production,
        "counts": snapshot.counts,
        "artifacts": {
            ref.version: {"path": ref.path, "checksum": ref.checksum, "status": ref.status}
            for ref in snapshot.artifacts
        },
        "files": dict(sorted(files.items())),
    }
    atomic_write(target / MANIFEST, json.dumps(manifest, indent=2).encode())
    fsync_path(target)
    return manifest


def read_manifest(source: Path, settings: CoreSettings) -> dict[str, Any]:
    """Read and check a backup's manifest against what this version of ReplyGuard and the
    target database can restore. Raises BackupError: no folder, no manifest (a partial
    backup), unreadable, unknown format, another database kind, a newer schema, or a file or
    artifact path that leaves the folder."""
    if not source.is_dir():
        raise BackupError(f"{source} is not a folder")
    path = source / MANIFEST
    if not path.is_file():
        raise BackupError(
            f"{source} has no {MANIFEST}: the backup is partial (interrupted before it was "
            "finished) or not a ReplyGuard backup"
        )
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
        database = manifest["database"]
        files, artifacts = manifest["files"], manifest["artifacts"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{path} is unreadable or incomplete ({exc!r})") from None
    if manifest.get("kind") != KIND:
        raise BackupError(f"{path} is not a ReplyGuard backup manifest")
    if manifest.get("format") != FORMAT:
        raise BackupError(
            f"{path}: unknown backup format {manifest.get('format')!r} (this version reads "
            f"format {FORMAT})"
        )
    kind = database_kind(settings)
    if database.get("kind") != kind:
        raise BackupError(
            f"the backup holds a {database.get('kind')} database and the target is {kind}: "
            "restore into the same kind of database"
        )
    known = {s.revision for s in ScriptDirectory.from_config(alembic_config("")).walk_revisions()}
    revision = database.get("alembic_revision")
    if revision not in known:
        raise BackupError(
            f"the backup's schema revision {revision!r} is unknown to this version of "
            "ReplyGuard: it was made by a newer version; restore it with that version"
        )
    for name in files:
        _inside(name)
    for version, artifact in artifacts.items():
        if _inside(artifact["path"]).parts[0] != "models":
            raise BackupError(f"{path}: model {version}'s artifact is not under models/")
    if DATABASE_FILES[kind] not in files:
        raise BackupError(f"{path} lists no database file")
    return manifest


def verify_files(source: Path, manifest: dict[str, Any], progress: Callable[[int], object]) -> None:
    """Check every file the manifest lists: present, of its size and its sha256. Raises
    BackupError naming each file that is not."""
    problems = []
    for name, entry in manifest["files"].items():
        path = source / name
        if not path.is_file():
            problems.append(f"{name} is missing")
        elif path.stat().st_size != entry["size"]:
            problems.append(f"{name} has {path.stat().st_size} bytes, not {entry['size']}")
        elif sha256_file(path, progress) != entry["sha256"]:
            problems.append(f"{name} is corrupt (checksum mismatch)")
    if problems:
        raise BackupError(f"{source} is damaged: " + "; ".join(problems))


def total_size(manifest: dict[str, Any]) -> int:
    return sum(int(entry["size"]) for entry in manifest["files"].values())


def _inside(name: str) -> PurePosixPath:
    """A manifest path must stay inside the folder it is relative to."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or not path.parts:
        raise BackupError(f"the manifest names a path outside the backup: {name!r}")
    return path
