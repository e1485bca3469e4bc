from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.demo import chatterbot_rows
from core.ingest import ExampleIn
from core.ingest import ImportFailed
from core.ingest import add_examples
from core.ingest import import_file
from core.ingest import validate_row
from core.provenance import Provenance
from core.schema import Example
from tests.helpers import at_once
from webapp.cli import main


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count(Example.id))) or 0)


def write_jsonl(path: Path, rows: list[object]) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    return path


def test_jsonl_import_needs_explicit_provenance(empty_db: Database, tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "a.jsonl", [{"message": "hi", "reply": "hello"}])
    with pytest.raises(ImportFailed, match="line 1: no provenance"), empty_db.session() as session:
        import_file(session, path, None, skip_invalid=False)
    assert count(empty_db) == 0
    with empty_db.session() as session:
        report = import_file(session, path, Provenance.HUMAN, skip_invalid=False)
    assert (report.added, report.duplicates) == (1, 0)


def test_per_row_provenance_column_wins(empty_db: Database, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "b.jsonl",
        [
            {"message": "a?", "reply": "b", "provenance": "human_selected"},
            {"message": "c?", "reply": "d"},
        ],
    )
    with empty_db.session() as session:
        import_file(session, path, Provenance.HUMAN, skip_invalid=False)
    with empty_db.session() as session:
        got = dict(session.execute(select(Example.message, Example.provenance)).all())
    assert got == {"a?": "human_selected", "c?": "human"}


def test_bad_rows_reported_by_line_and_nothing_imported(empty_db: Database, tmp_path: Path) -> None:
    path = write_jsonl(
        tmp_path / "bad.jsonl",
        [
            {"message": "fine", "reply": "ok"},
            "{not json",
            {"message": "   ", "reply": "x"},
            {"message": "m", "reply": 3},
            {"message": "m", "reply": "r", "colour": "red"},
            {"message": "m", "reply": "r", "provenance": "robot"},
            [1, 2],
        ],
    )
    with pytest.raises(ImportFailed) as failure, empty_db.session() as session:
        import_file(session, path, Provenance.HUMAN, skip_invalid=False)
    lines = {e.line: e.message for e in failure.value.errors}
    # Line 5's extra column is ignored with a note (tests/test_import_files.py), not refused.
    assert set(lines) == {2, 3, 4, 6, 7}
    assert "not valid JSON" in lines[2]
    assert "'message' is empty" in lines[3]
    assert "'reply' must be a string" in lines[4]
    assert "provenance must be one of" in lines[6]
    assert "JSON object" in lines[7]
    assert count(empty_db) == 0

    with empty_db.session() as session:
        report = import_file(session, path, Provenance.HUMAN, skip_invalid=True)
    assert report.added == 2
    assert [e.line for e in report.skipped] == [2, 3, 4, 6, 7]
    assert report.notes == [
        "ignored column 'colour' (1 row(s)): only conversation, message, niche, provenance, reply are imported"
    ]


def test_csv_import_and_reimport_adds_nothing(empty_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "pairs.csv"
    path.write_text('message,reply,niche\n"Hi, there",Hello,greetings\nBye,See you,\n')
    with empty_db.session() as session:
        first = import_file(session, path, Provenance.HUMAN, skip_invalid=False)
    with empty_db.session() as session:
        second = import_file(session, path, Provenance.HUMAN, skip_invalid=False)
    assert (first.added, second.added, second.duplicates) == (2, 0, 2)
    with empty_db.session() as session:
        niches = dict(session.execute(select(Example.message, Example.niche)).all())
    assert niches == {"Hi, there": "greetings", "Bye": "general"}


def test_csv_without_reply_column_is_refused(empty_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("message,answer\nhi,hello\n")
    with pytest.raises(ValueError, match="CSV header must name reply"), empty_db.session() as s:
        import_file(s, path, Provenance.HUMAN, skip_invalid=False)


def test_cli_import_reports_and_exits_nonzero(empty_db: Database, tmp_path: Path) -> None:
    data_dir = str(empty_db.settings.data_dir)
    good = write_jsonl(tmp_path / "g.jsonl", [{"message": "hi", "reply": "hello"}])
    bad = write_jsonl(tmp_path / "b.jsonl", [{"message": "hi"}])
    runner = CliRunner()
    missing = runner.invoke(main, ["--data-dir", data_dir, "data", "import", str(good)])
    assert missing.exit_code == 1
    assert "no provenance" in missing.output
    ok = runner.invoke(
        main, ["--data-dir", data_dir, "data", "import", str(good), "--provenance", "human"]
    )
    assert ok.exit_code == 0, ok.output
    assert "1 added" in ok.output
    failed = runner.invoke(
        main, ["--data-dir", data_dir, "data", "import", str(bad), "--provenance", "human"]
    )
    assert failed.exit_code == 1
    assert "line 1: 'reply' is missing" in failed.output
    assert "--skip-invalid" in failed.output


def test_identical_concurrent_inserts_store_each_example_once(store: Database) -> None:
    examples = [
        ExampleIn(f"race message {i}", f"race reply {i}", "general", Provenance.HUMAN)
        for i in range(50)
    ]

    def insert(_: int) -> tuple[int, int]:
        with store.session() as session:
            added, duplicates = add_examples(session, examples, source="race")
            return len(added), duplicates

    results = at_once(8, insert)
    assert sum(added for added, _ in results) == 50
    assert {added + duplicates for added, duplicates in results} == {50}
    assert count(store) == 50


def test_every_demo_example_passes_the_text_validation_of_imports() -> None:
    # The limits are set so that the product's own human data can be exported and imported.
    refused = []
    for _, example in chatterbot_rows():
        raw = {"message": example.message, "reply": example.reply, "niche": example.niche}
        try:
            validate_row(raw, Provenance.HUMAN)
        except ValueError as exc:
            refused.append(str(exc))
    assert refused == []
