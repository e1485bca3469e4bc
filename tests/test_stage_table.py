"""Stage state in its own table (core/migrations/versions/0006_generation_stages.py): the
history recorded before it moves across and back, on SQLite and PostgreSQL; references
and the generation store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import text

from core.db import Database
from core.db import alembic_config
from core.generations import ACTIVE
from core.generations import active_generation
from core.generations import end_generation
from core.generations import new_generation
from core.references import ExampleRef
from core.references import PromptRef
from core.schema import Generation
from core.schema import GenerationStatus
from tests.helpers import make_settings

# Two generations as revision 0005 recorded them: a finished one (every kind of field, the
# snapshot's data included) and one that failed in synthesize after a resume.
OLD_STAGES: dict[int, dict[str, Any]] = {
    1: {
        "snapshot": {
            "status": "done",
            "progress": 1.0,
            "attempts": 1,
            "worker": "host:10",
            "started_at": "2026-05-04T03:00:00+00:00",
            "finished_at": "2026-05-04T03:00:02.500000+00:00",
            "seconds": 2.5,
            "counts": {"watermark": 40, "prompts": 2},
            "data": {"watermark": 40, "prompts": [["incoming", 3], ["feedback", 7]]},
        },
        "synthesize": {
            "status": "done",
            "progress": 1.0,
            "attempts": 2,
            "worker": "host:11",
            "resumed_by": "tester",
            "started_at": "2026-05-04T03:01:00+00:00",
            "finished_at": "2026-05-04T03:01:09+00:00",
            "seconds": 9.0,
            "counts": {"written": 2, "removed": {"empty_reply": 0}},
        },
    },
    2: {
        "snapshot": {
            "status": "failed",
            "progress": 0.25,
            "attempts": 1,
            "worker": "host:12",
            "started_at": "2026-05-05T03:00:00+00:00",
            "error": "OSError: disk full",
        },
    },
}


def _at(database: Database, revision: str, direction: str = "upgrade") -> None:
    with database.engine.begin() as connection:
        config = alembic_config(database.url)
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


def _old_database(database: Database) -> None:
    _at(database, "0005")
    with database.engine.begin() as connection:
        for number, stages in OLD_STAGES.items():
            connection.execute(
                text(
                    "INSERT INTO generations (id, number, status, stage, stages, metrics, "
                    "decision, error, requested_by, created_at) VALUES (:id, :number, "
                    "'failed', 'snapshot', :stages, '{}', '{}', '', 'tester', :created)"
                ),
                {
                    "id": number,
                    "number": number,
                    "stages": json.dumps(stages),
                    "created": "2026-05-04 03:00:00",
                },
            )


def check_round_trip(database: Database) -> None:
    """Upgrade a database holding 0005's JSON records: each reads back the same; downgrade:
    the JSON column holds them again."""
    _old_database(database)
    database.upgrade()
    with database.session() as session:
        for number, stages in OLD_STAGES.items():
            generation = session.get_one(Generation, number)
            assert generation.stages == stages
            assert list(generation.stage_runs) == list(stages)
    _at(database, "0005", "downgrade")
    with database.engine.connect() as connection:
        rows = connection.execute(text("SELECT id, stages FROM generations ORDER BY id")).all()
    restored = {i: s if isinstance(s, dict) else json.loads(s) for i, s in rows}
    assert restored == OLD_STAGES


def test_the_stage_history_moves_into_its_table_and_back(tmp_path: Path) -> None:
    database = Database(make_settings(tmp_path / "data"))
    try:
        check_round_trip(database)
    finally:
        database.dispose()


@pytest.mark.integration
def test_the_stage_history_moves_on_postgresql(tmp_path: Path, pg_url: str) -> None:
    database = Database(make_settings(tmp_path / "data", database_url=pg_url))
    try:
        check_round_trip(database)
    finally:
        database.dispose()


def test_progress_is_one_row_and_the_store_holds_the_lock(db: Database) -> None:
    with db.session() as session:
        first = new_generation(1, "tester")
        session.add(first)
        session.flush()
        assert first.lock == ACTIVE
        assert active_generation(session) is first
        end_generation(first, GenerationStatus.BLOCKED)
        assert (first.status, first.lock) == ("blocked", None)
        assert first.finished_at is not None
        assert active_generation(session) is None
        with pytest.raises(ValueError, match="not a final status"):
            end_generation(first, GenerationStatus.RUNNING)


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("example:7", ExampleRef("example", 7)),
        ("candidate:12", ExampleRef("candidate", 12)),
    ],
)
def test_an_example_reference_reads_what_it_writes(text: str, ref: ExampleRef) -> None:
    assert ExampleRef.parse(text) == ref
    assert str(ref) == text


@pytest.mark.parametrize("text", ["", "example", "example:", "example:x", "incoming:3", "7"])
def test_anything_else_is_no_example_reference(text: str) -> None:
    with pytest.raises(ValueError, match="not an example reference"):
        ExampleRef.parse(text)


def test_a_prompt_reference_reads_what_it_writes() -> None:
    assert PromptRef.parse("feedback:3") == PromptRef("feedback", 3)
    assert str(PromptRef("incoming", 9)) == "incoming:9"
    with pytest.raises(ValueError, match="not a prompt reference"):
        PromptRef.parse("candidate:3")


def _upgrade(settings_dir: str, database_url: str, start: Any) -> None:
    # In a process of its own, as each gunicorn or Celery worker migrates on start; all
    # of them at the same moment (the barrier), past their imports.
    database = Database(make_settings(Path(settings_dir), database_url=database_url))
    try:
        start.wait(timeout=60)
        database.upgrade()
    finally:
        database.dispose()


def check_concurrent_upgrades(database: Database, data_dir: Path, url: str) -> None:
    """Four processes start at once on a database one migration behind: every one succeeds
    and the schema is at head once (a second run of 0006 would fail creating its table)."""
    import multiprocessing

    database.upgrade()
    _at(database, "0005", "downgrade")
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(4)
    processes = [
        context.Process(target=_upgrade, args=(str(data_dir), url, start)) for _ in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [p.exitcode for p in processes] == [0, 0, 0, 0]
    # Head, once (0006 and every migration after it ran once).
    head = ScriptDirectory.from_config(alembic_config(database.url)).get_current_head()
    with database.engine.connect() as connection:
        assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [
            (head,)
        ]


def test_processes_starting_together_migrate_one_at_a_time(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data")
    database = Database(settings)
    try:
        check_concurrent_upgrades(database, tmp_path / "data", "")
    finally:
        database.dispose()


@pytest.mark.integration
def test_processes_starting_together_migrate_one_at_a_time_on_postgresql(
    tmp_path: Path, pg_url: str
) -> None:
    database = Database(make_settings(tmp_path / "data", database_url=pg_url))
    try:
        check_concurrent_upgrades(database, tmp_path / "data", pg_url)
    finally:
        database.dispose()
