"""Malformed import files (issue 11, item 10): every one is reported row by row with its
line numbers or refused as a whole with a reason, `--skip-invalid` skips exactly the bad
rows, a run that imports nothing fails, extra columns are ignored with a note, and no file
produces a traceback, through `replyguard data import` and `replyguard simulate --data`."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from click.testing import Result
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.ingest import FileRefused
from core.ingest import ImportFailed
from core.ingest import import_file
from core.ingest import read_rows
from core.ingest import validate_row
from core.provenance import Provenance
from core.schema import Example
from webapp.cli import main


def count(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count(Example.id))) or 0)


def cli_import(db: Database, path: Path, *extra: str) -> Result:
    return CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(db.settings.data_dir),
            "data",
            "import",
            str(path),
            "--provenance",
            "human",
            *extra,
        ],
    )


def test_a_csv_column_named_twice_is_refused_on_line_1(empty_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "twice.csv"
    path.write_text("message,reply,reply\nhi,hello,hey there\n")
    with pytest.raises(FileRefused) as refused, empty_db.session() as session:
        import_file(session, path, Provenance.HUMAN, skip_invalid=True)
    assert "line 1: column 'reply' appears twice in the header (columns 2 and 3)" in str(
        refused.value
    )
    assert count(empty_db) == 0


def test_an_unterminated_quote_is_one_bad_row_with_the_lines_it_swallowed(
    empty_db: Database, tmp_path: Path
) -> None:
    rows = [f"message {i},reply {i}" for i in range(50)]
    path = tmp_path / "quote.csv"
    path.write_text('message,reply\nhello,hi there\nhow are you,"fine, thanks\n' + "\n".join(rows))
    with pytest.raises(ImportFailed) as failed, empty_db.session() as session:
        import_file(session, path, Provenance.HUMAN, skip_invalid=False)
    (error,) = failed.value.errors
    assert error.line == 3
    assert "runs from line 3 to line 53" in error.message
    assert "quote that is never closed" in error.message
    assert count(empty_db) == 0
    with empty_db.session() as session:
        report = import_file(session, path, Provenance.HUMAN, skip_invalid=True)
    assert (report.added, [e.line for e in report.skipped]) == (1, [3])


def test_csv_rows_are_numbered_by_their_first_line_and_headers_match_loosely(
    tmp_path: Path,
) -> None:
    path = tmp_path / "loose.csv"
    path.write_text("Message , REPLY,niche\n\na,b,c\nd,e\n")
    found = read_rows(path)
    assert found.rows == [
        (3, {"message": "a", "reply": "b", "niche": "c"}),
        (4, {"message": "d", "reply": "e"}),
    ]
    assert found.notes == []


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "export.jsonl",
            '{"message": "hi", "reply": "hello", "source": "crm"}\n'
            '{"message": "bye", "reply": "see you", "source": "crm", "id": 7}\n',
        ),
        ("export.csv", "id,message,reply,source\n1,hi,hello,crm\n2,bye,see you,crm\n"),
    ],
)
def test_extra_columns_are_ignored_with_a_note_never_a_refusal(
    empty_db: Database, tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with empty_db.session() as session:
        report = import_file(session, path, Provenance.HUMAN, skip_invalid=False)
    assert (report.added, report.skipped) == (2, [])
    assert any("ignored column 'source' (2 row(s))" in note for note in report.notes)
    result = cli_import(empty_db, path)
    assert result.exit_code == 0, result.output
    assert "note: ignored column 'source'" in result.output
    assert "0 added, 2 already present" in result.output


def test_skip_invalid_that_imports_nothing_is_a_failure(empty_db: Database, tmp_path: Path) -> None:
    path = tmp_path / "all-bad.jsonl"
    path.write_text("\n".join(json.dumps({"message": f"m{i}"}) for i in range(5)) + "\n")
    result = cli_import(empty_db, path, "--skip-invalid")
    assert result.exit_code == 1
    assert "nothing imported: all 5 row(s) are invalid" in result.output
    for line in range(1, 6):
        assert f"line {line}: 'reply' is missing" in result.output
    assert count(empty_db) == 0
    # One good row among them: imported, and each bad row skipped by its line.
    path.write_text(path.read_text() + json.dumps({"message": "hi", "reply": "hello"}) + "\n")
    result = cli_import(empty_db, path, "--skip-invalid")
    assert result.exit_code == 0, result.output
    assert "all-bad.jsonl: 1 added" in result.output
    assert "5 invalid row(s) skipped" in result.output
    assert count(empty_db) == 1


def test_jsonl_lines_are_counted_as_editors_count_them(tmp_path: Path) -> None:
    # U+2028 and U+0085 are valid inside a JSON string; str.splitlines() would break there.
    path = tmp_path / "separators.jsonl"
    rows = [{"message": "one\u2028two", "reply": "a\x85b"}, {"message": "x", "reply": "y"}]
    path.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    found = read_rows(path)
    assert [line for line, _ in found.rows] == [1, 2]
    assert found.rows[0][1] == rows[0]


def _files(folder: Path) -> dict[str, Path]:
    """Files no import should take, each making a different part of the reader fail."""
    contents: dict[str, bytes] = {
        "garbage.csv": os.urandom(2048) + b"\xff\xfe",
        "garbage.jsonl": b"\x00\x01\x02\xff" * 100,
        "empty.csv": b"",
        "empty.jsonl": b"",
        "blank.jsonl": b"\n  \n\t\n",
        "header-only.csv": b"message,reply\n",
        "no-reply-column.csv": b"message,answer\nhi,hello\n",
        "bom-then-nothing.csv": b"\xef\xbb\xbf",
        "array.json": b'[{"message": "hi", "reply": "hello"}]',
        "deep.jsonl": b'{"message": ' + b"[" * 100_000 + b"\n",
        "huge-field.csv": b"message,reply\nhi," + b"x" * 200_000 + b"\n",
        "notes.txt": b"message,reply\nhi,hello\n",
        "no-extension": b'{"message": "hi", "reply": "hello"}\n',
    }
    paths = {}
    for name, data in contents.items():
        paths[name] = folder / name
        paths[name].write_bytes(data)
    paths["a-folder.csv"] = folder / "a-folder.csv"
    paths["a-folder.csv"].mkdir()
    return paths


def test_no_file_produces_a_traceback_on_import(empty_db: Database, tmp_path: Path) -> None:
    for name, path in _files(tmp_path).items():
        for extra in ((), ("--skip-invalid",)):
            result = cli_import(empty_db, path, *extra)
            # 1: refused with a message; 2: refused by the argument check (a folder).
            assert result.exit_code in (1, 2), (name, result.output)
            assert isinstance(result.exception, SystemExit), (name, result.exception)
            assert "Error:" in result.output, (name, result.output)
            assert "Traceback" not in result.output, name
    assert count(empty_db) == 0


@pytest.mark.parametrize(
    ("name", "content", "says"),
    [
        ("empty.jsonl", "", "no rows to import"),
        (
            "one-bad.jsonl",
            '{"message": "hi", "reply": "hello"}\n{"message": "bad"}\n',
            "line 2: 'reply' is missing",
        ),
        ("twice.csv", "message,reply,reply\nhi,hello,hey\n", "appears twice"),
    ],
)
def test_simulate_reports_bad_data_like_import_and_leaves_nothing_behind(
    tmp_path: Path, name: str, content: str, says: str
) -> None:
    data = tmp_path / name
    data.write_text(content)
    out = tmp_path / "out"
    command = ["simulate", "--policy", "replace", "--data", str(data), "--out", str(out)]
    for _ in range(2):  # and again: a failed run blocks no rerun
        result = CliRunner().invoke(main, command)
        assert result.exit_code == 1, result.output
        assert isinstance(result.exception, SystemExit), result.exception
        assert says in result.output
        assert not out.exists()
        assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    if "line 2" in says:
        # The option the message names exists, and skips exactly that row.
        assert "--skip-invalid" in result.output
        skipped = CliRunner().invoke(main, [*command, "--skip-invalid"])
        assert "skipped line 2: 'reply' is missing" in skipped.output
        assert isinstance(skipped.exception, SystemExit), skipped.exception


@pytest.mark.integration
def test_an_api_import_that_would_store_nothing_is_refused_too(
    client: FlaskClient, reviewer_headers: dict[str, str]
) -> None:
    rows = [{"message": "   ", "reply": "a"}, {"message": "b", "reply": "   "}]
    answer = client.post(
        "/v1/examples",
        json={"examples": rows, "provenance": "human", "skip_invalid": True},
        headers=reviewer_headers,
    )
    assert answer.status_code == 422
    error = answer.json["error"]
    assert error["message"] == "all 2 example(s) are invalid: nothing imported"
    assert [row["index"] for row in error["details"]["rows"]] == [0, 1]


@pytest.mark.parametrize(
    ("name", "content"),
    [
        (
            "dialogues.jsonl",
            '{"message": "hi", "reply": "hello", "conversation": "d-17"}\n'
            '{"message": "bye", "reply": "see you", "conversation": 17}\n'
            '{"message": "thanks", "reply": "any time"}\n',
        ),
        (
            "dialogues.csv",
            "conversation,message,reply\nd-17,hi,hello\n17,bye,see you\n,thanks,any time\n",
        ),
    ],
)
def test_a_conversation_column_names_each_rows_source(
    empty_db: Database, tmp_path: Path, name: str, content: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with empty_db.session() as session:
        report = import_file(session, path, Provenance.HUMAN, skip_invalid=False)
    assert (report.added, report.skipped, report.notes) == (3, [], [])
    with empty_db.session() as session:
        stored = dict(session.execute(select(Example.message, Example.conversation)).all())
    # Its own namespace: a file cannot pass for a corpus conversation or a client's feedback.
    assert stored == {"hi": "import:d-17", "bye": "import:17", "thanks": None}


@pytest.mark.parametrize(
    ("conversation", "error"),
    [
        ("a\nb", "'conversation' has a control character U+000A at character 1"),
        ("c" * 191, "'conversation' is longer than 190 characters"),
        (True, "'conversation' must be a string, not bool"),
        ([1], "'conversation' must be a string, not list"),
    ],
)
def test_a_bad_conversation_id_is_a_bad_row(conversation: object, error: str) -> None:
    with pytest.raises(ValueError, match="^" + re.escape(error)):
        validate_row(
            {"message": "hi", "reply": "hello", "conversation": conversation}, Provenance.HUMAN
        )
