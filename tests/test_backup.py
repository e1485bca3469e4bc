"""Backup and restore on SQLite and on a real PostgreSQL server, from the trained demo data
folder: the restored service serves the same production model and the same examples, and a
damaged or partial backup is refused without touching the target."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from pytest_postgresql.executors import PostgreSQLExecutor
from sqlalchemy import select
from sqlalchemy import text

from core.db import Database
from core.ingest import ExampleIn
from core.ingest import add_examples
from core.keys import create_key
from core.provenance import Provenance
from core.schema import Base
from core.schema import Example
from core.schema import ModelVersion
from core.schema import Role
from models.artifact import verify
from models.backup import BackupError
from models.backup import backup
from models.backup import restore
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from tests.helpers import FAST_TRAINING
from tests.helpers import make_settings
from tests.helpers import migrated
from tests.pg import database
from webapp.cli import main
from worker.settings import Settings

pytestmark = pytest.mark.integration

MESSAGES = ["hello, how are you?", "what is your favourite movie?", "do you like music?"]


def state(settings: Settings) -> dict[str, Any]:
    """What a restore must bring back: production, every example row, every model version,
    each artifact verified against the checksum its row records."""
    db = Database(settings)
    try:
        with db.session() as session:
            current = production(session)
            rows = session.execute(
                select(
                    Example.id,
                    Example.message,
                    Example.reply,
                    Example.niche,
                    Example.provenance,
                    Example.source,
                    Example.content_hash,
                ).order_by(Example.id)
            ).all()
            versions = session.scalars(select(ModelVersion).order_by(ModelVersion.id)).all()
            for row in versions:
                if row.artifact_path:
                    verify(artifact_dir(settings, row), row.checksum)
            return {
                "production": current.version if current else None,
                "examples": len(rows),
                "examples_sha256": hashlib.sha256(
                    json.dumps([list(r) for r in rows]).encode()
                ).hexdigest(),
                "versions": [(v.version, v.status, v.checksum) for v in versions],
            }
    finally:
        db.dispose()


def tree(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` with its sha256: equal before and after means unchanged."""
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def flip_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def suggestions(settings: Settings, encoder: Encoder, token: str) -> dict[str, Any]:
    """What the service built on ``settings`` answers: the model it serves and its
    suggestions for MESSAGES."""
    from webapp import create_app

    app = create_app(
        {"data_dir": str(settings.data_dir), "database_url": settings.database_url} | FAST_TRAINING,
        encoder=encoder,
    )
    try:
        client = app.test_client()
        ready = client.get("/readyz").json
        answers = [
            client.post(
                "/v1/suggestions",
                json={"message": m, "force": True},
                headers={"Authorization": f"Bearer {token}"},
            ).json
            for m in MESSAGES
        ]
        return {
            "model": ready["checks"]["model"],
            "answers": [[s["text"] for s in a["suggestions"]] for a in answers],
        }
    finally:
        # Write the incoming messages now, while the database (maybe a PostgreSQL cluster the
        # test stops) is up, not at interpreter exit.
        app.extensions["replyguard"].incoming.flush()
        app.extensions["replyguard"].db.dispose()


def client_key(settings: Settings) -> str:
    db = Database(settings)
    try:
        with db.session() as session:
            token, _ = create_key(session, "backup test", Role.CLIENT, "tester")
        return token
    finally:
        db.dispose()


@pytest.fixture
def backed_up(settings: Settings, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    """A backup of the trained data folder, and the state it holds."""
    folder = tmp_path / "backup"
    backup(settings, folder)
    return folder, state(settings)


# ---------------------------------------------------------------------------------------
# Round trips


def test_round_trip_on_sqlite_serves_the_same_model_and_examples(
    settings: Settings, tmp_path: Path, encoder: Encoder
) -> None:
    token = client_key(settings)
    before = state(settings)
    served_before = suggestions(settings, encoder, token)
    assert before["production"] is not None
    assert before["examples"] > 500

    manifest = backup(settings, tmp_path / "backup")
    assert manifest["database"] == {
        "kind": "sqlite",
        "file": "database.sqlite3",
        "alembic_revision": manifest["database"]["alembic_revision"],
    }
    assert manifest["database"]["alembic_revision"]
    assert manifest["production"] == before["production"]
    assert set(manifest["artifacts"]) == {v for v, _, _ in before["versions"]}
    assert manifest["counts"]["examples"] == before["examples"]
    for name, entry in manifest["files"].items():
        path = tmp_path / "backup" / name
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"]
        assert path.stat().st_size == entry["size"]

    target = make_settings(tmp_path / "restored")
    report = restore(target, tmp_path / "backup")

    assert report.production == before["production"]
    assert report.replaced == []
    assert state(target) == before
    # The same model, the same answers, and the API key came back with the database.
    assert suggestions(target, encoder, token) == served_before
    assert served_before["model"] == before["production"]


def _copy_rows(source: Database, target: Database) -> None:
    """Every row of the SQLite data folder into a migrated PostgreSQL database, with the
    id sequences moved past the copied ids."""
    with source.engine.connect() as reader, target.engine.begin() as writer:
        for table in Base.metadata.sorted_tables:
            rows = [dict(r._mapping) for r in reader.execute(table.select())]
            if rows:
                writer.execute(table.insert(), rows)
            if "id" in table.c:
                writer.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                        f"coalesce(max(id), 0) + 1, false) FROM {table.name}"
                    )
                )


def test_round_trip_on_postgres(
    settings: Settings, tmp_path: Path, pg_url: str, pg_server: PostgreSQLExecutor, encoder: Encoder
) -> None:
    # The trained data folder's rows, moved to PostgreSQL; its artifacts stay where they are.
    source = make_settings(settings.data_dir, database_url=pg_url)
    for db in migrated(source):
        sqlite_db = Database(settings)
        _copy_rows(sqlite_db, db)
        sqlite_db.dispose()
    (settings.data_dir / "replyguard.sqlite3").unlink()
    token = client_key(source)
    before = state(source)
    served_before = suggestions(source, encoder, token)
    assert before["production"] is not None

    manifest = backup(source, tmp_path / "backup")
    assert manifest["database"]["kind"] == "postgresql"
    assert (tmp_path / "backup" / "database.pgdump").read_bytes()[:5] == b"PGDMP"

    # The target: a database that a newer version has already migrated (empty tables), and
    # a new data folder.
    with database(pg_server, f"restore_target_{os.getpid()}") as target_url:
        target = make_settings(tmp_path / "restored", database_url=target_url)
        for _ in migrated(target):
            pass
        report = restore(target, tmp_path / "backup")
        assert report.replaced == []
        assert state(target) == before
        assert suggestions(target, encoder, token) == served_before

        # Now it holds data: refused without --force, replaced with it.
        with pytest.raises(BackupError, match="--force") as refused:
            restore(target, tmp_path / "backup")
        assert "examples" in str(refused.value)
        db = Database(target)
        with db.session() as session:
            add_examples(
                session, [ExampleIn("after the backup", "yes", "general", Provenance.HUMAN)], "t"
            )
        db.dispose()
        assert state(target)["examples"] == before["examples"] + 1
        report = restore(target, tmp_path / "backup", force=True)
        assert any("examples" in item for item in report.replaced)
        assert state(target) == before


def test_pg_dump_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    settings = make_settings(tmp_path / "d", database_url="postgresql+psycopg://u:p@127.0.0.1/x")
    with pytest.raises(BackupError, match="pg_dump is not on PATH"):
        backup(settings, tmp_path / "backup")
    assert not (tmp_path / "backup").exists()


# ---------------------------------------------------------------------------------------
# What restore refuses


def _damage_artifact(folder: Path) -> None:
    flip_byte(folder / "models" / "v1" / "bank_embeddings.npy")


def _damage_database(folder: Path) -> None:
    flip_byte(folder / "database.sqlite3")


def _remove_manifest(folder: Path) -> None:
    (folder / "manifest.json").unlink()


def _remove_artifact(folder: Path) -> None:
    shutil.rmtree(folder / "models" / "v1")


def _future_format(folder: Path) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    path.write_text(json.dumps({**manifest, "format": 2}))


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (_damage_artifact, r"models/v1/bank_embeddings\.npy is corrupt \(checksum mismatch\)"),
        (_damage_database, r"database\.sqlite3 is corrupt \(checksum mismatch\)"),
        (_remove_manifest, r"no manifest\.json: the backup is partial"),
        (_remove_artifact, r"models/v1/manifest\.json is missing"),
        (_future_format, r"unknown backup format 2"),
    ],
)
def test_a_damaged_or_partial_backup_is_refused_and_changes_nothing(
    backed_up: tuple[Path, dict[str, Any]],
    tmp_path: Path,
    settings: Settings,
    damage: Any,
    message: str,
) -> None:
    folder, _ = backed_up
    damage(folder)
    # Into a new folder: nothing is created. Into a folder with data, even with --force:
    # not one byte changes.
    empty = make_settings(tmp_path / "new")
    with pytest.raises(BackupError, match=message):
        restore(empty, folder)
    assert not (tmp_path / "new").exists()
    before = tree(settings.data_dir)
    with pytest.raises(BackupError, match=message):
        restore(settings, folder, force=True)
    assert tree(settings.data_dir) == before


def test_a_target_with_data_is_refused_without_force_and_replaced_with_it(
    backed_up: tuple[Path, dict[str, Any]], settings: Settings
) -> None:
    folder, backed_up_state = backed_up
    # The data folder moves on after the backup: a new example and a stray artifact folder.
    db = Database(settings)
    with db.session() as session:
        add_examples(session, [ExampleIn("later", "indeed", "general", Provenance.HUMAN)], "t")
    db.dispose()
    (settings.models_dir / "v99").mkdir()
    before = tree(settings.data_dir)

    with pytest.raises(BackupError, match="--force") as refused:
        restore(settings, folder)
    message = str(refused.value)
    assert "examples" in message
    assert "models" in message
    assert "Nothing was changed" in message
    assert tree(settings.data_dir) == before

    report = restore(settings, folder, force=True)
    assert report.replaced
    assert state(settings) == backed_up_state
    assert not (settings.models_dir / "v99").exists()
    assert not [p for p in settings.data_dir.iterdir() if p.name.startswith(".restore-")]


def test_a_backup_of_a_damaged_artifact_fails_and_leaves_no_folder(
    settings: Settings, tmp_path: Path
) -> None:
    flip_byte(settings.models_dir / "v1" / "bank.json")
    with pytest.raises(BackupError, match=r"model v1: its artifact is damaged"):
        backup(settings, tmp_path / "backup")
    assert not (tmp_path / "backup").exists()


def test_a_backup_needs_an_empty_folder(settings: Settings, tmp_path: Path) -> None:
    (tmp_path / "backup").mkdir()
    (tmp_path / "backup" / "keep.txt").write_text("mine")
    with pytest.raises(BackupError, match="not empty"):
        backup(settings, tmp_path / "backup")
    assert [p.name for p in (tmp_path / "backup").iterdir()] == ["keep.txt"]


# ---------------------------------------------------------------------------------------
# The command line


@pytest.fixture
def runner() -> Iterator[CliRunner]:
    yield CliRunner()


def test_the_commands(runner: CliRunner, settings: Settings, tmp_path: Path) -> None:
    data = str(settings.data_dir)
    folder = str(tmp_path / "backup")
    result = runner.invoke(main, ["--data-dir", data, "backup", folder])
    assert result.exit_code == 0, result.output
    assert "backup complete" in result.output
    assert "production v1" in result.output

    result = runner.invoke(main, ["--data-dir", data, "restore", folder])
    assert result.exit_code == 1
    assert "give --force" in result.output

    result = runner.invoke(main, ["--data-dir", data, "restore", folder, "--force"])
    assert result.exit_code == 0, result.output
    assert "production v1" in result.output

    (tmp_path / "backup" / "manifest.json").unlink()
    result = runner.invoke(
        main, ["--data-dir", str(tmp_path / "other"), "restore", folder, "--force"]
    )
    assert result.exit_code == 1
    assert "partial" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------------------------------
# A live service (faults item 8)

# A stand-in for a worker running a stage of generation id 4: on record as a Celery worker
# (core/processes.py) and holding the generation's stage lock, as worker/pipeline.py does.
_WORKER = """
import fcntl, os, sys, time
from pathlib import Path
from core.processes import register
data = Path(sys.argv[1])
register(data, "celery worker")
folder = data / "generations" / "4"
folder.mkdir(parents=True, exist_ok=True)
fd = os.open(folder / "stage.lock", os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
(folder / "work-in-progress").write_text("training")
print("holding", flush=True)
time.sleep(120)
"""


def test_restore_is_refused_while_any_process_of_the_service_runs(
    backed_up: tuple[Path, dict[str, Any]], settings: Settings
) -> None:
    """`restore --force` while a worker trains generation 4 (before: it deleted
    generations/4 under the worker, which then wrote into the restored database), and while a
    real gunicorn server runs on the folder: refused, naming each process, nothing changed.
    Once they are stopped it restores."""
    import subprocess
    import sys

    from webapp.launch import free_port
    from webapp.launch import start_server
    from webapp.launch import stop_server

    folder, backed_up_state = backed_up
    runner = CliRunner()
    args = ["--data-dir", str(settings.data_dir), "restore", str(folder), "--force"]
    worker = subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(settings.data_dir)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "holding"
        before = tree(settings.data_dir)
        result = runner.invoke(main, args)
        assert result.exit_code == 1, result.output
        assert f"celery worker (pid {worker.pid}" in result.output
        assert "a worker running a stage of generation id 4" in result.output
        assert "Nothing was changed" in result.output and "Stop them first" in result.output
        # The library's restore refuses too, just before its first change.
        with pytest.raises(BackupError, match="generation id 4"):
            restore(settings, folder, force=True)
        assert tree(settings.data_dir) == before
    finally:
        worker.kill()
        worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()

    server = start_server(settings.data_dir, free_port())
    try:
        result = runner.invoke(main, args)
        assert result.exit_code == 1, result.output
        assert f"gunicorn master (pid {server.pid}" in result.output
        assert "gunicorn web worker (pid" in result.output
        assert "celery worker" not in result.output, "a killed process's record is not live"
    finally:
        stop_server(server)
    result = runner.invoke(main, args)
    assert result.exit_code == 0, result.output
    assert state(settings) == backed_up_state
    assert not (settings.data_dir / "generations" / "4").exists()
