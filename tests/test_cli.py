"""The command line applies the one text validation (core/text.py) to every text it takes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.schema import ApiKey
from core.schema import AuditEntry
from core.schema import Example
from core.schema import Generation
from models.encoder import Encoder
from tests.helpers import LIBRARY_LINES
from tests.helpers import make_settings
from webapp.cli import main
from webapp.supervisor import RUN_ACTOR

# A command line can carry bytes that are not UTF-8: Python hands them over as lone surrogates.
UNDECODABLE = "oops \udcff"


def run(db: Database, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["--data-dir", str(db.settings.data_dir), *args])
    return result.exit_code, result.output


def rows(db: Database, table: type) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count()).select_from(table)) or 0)


@pytest.mark.parametrize(
    "command",
    [
        ["models", "promote", "v1"],
        ["models", "rollback", "v1"],
        ["generation", "fail", "1"],
        ["reservoir", "rebuild"],
        ["intents", "disable", "ok"],
    ],
)
@pytest.mark.parametrize(
    ("reason", "fragment"),
    [
        (UNDECODABLE, "reason is not valid Unicode: a lone surrogate U+DCFF at character 5"),
        ("tab\tok, bell \x07 not", "reason has a control character U+0007 at character 13"),
        ("\ufeff", "reason is empty or only whitespace and invisible characters"),
        ("r" * 2001, "reason is longer than 2000 characters"),
    ],
)
def test_every_reason_option_refuses_bad_text(
    empty_db: Database, command: list[str], reason: str, fragment: str
) -> None:
    before = rows(empty_db, AuditEntry)
    code, output = run(empty_db, *command, "--reason", reason)
    assert code == 2
    assert "Invalid value for '--reason'" in output
    assert fragment in output
    assert rows(empty_db, AuditEntry) == before


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        (UNDECODABLE, "name is not valid Unicode"),
        ("ios\napp", "name has a control character U+000A at character 3; a name is one line"),
        ("n" * 101, "name is longer than 100 characters"),
    ],
)
def test_key_names_are_checked(empty_db: Database, name: str, fragment: str) -> None:
    code, output = run(empty_db, "keys", "create", "--name", name)
    assert (code, fragment in output) == (2, True)
    assert rows(empty_db, ApiKey) == 0
    code, output = run(empty_db, "keys", "create", "--name", "  ios app  ")
    assert code == 0, output
    with empty_db.session() as session:
        assert session.scalar(select(ApiKey.name)) == "ios app"


def test_file_imports_check_texts_and_refuse_synthetic_rows(
    empty_db: Database, tmp_path: Path
) -> None:
    path = tmp_path / "rows.jsonl"
    lines = [
        {"message": "fine", "reply": "ok"},
        {"message": "hi \ud800", "reply": "r"},
        {"message": "m", "reply": "\u200b\u200b"},
        {"message": "m", "reply": "r", "niche": "a\tb"},
        {"message": "m", "reply": "r", "provenance": "synthetic"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    code, output = run(empty_db, "data", "import", str(path), "--provenance", "human")
    assert code == 1
    assert "line 2: 'message' is not valid Unicode" in output
    assert "line 3: 'reply' is empty or only whitespace and invisible characters" in output
    assert "line 4: 'niche' has a control character U+0009" in output
    assert "line 5: synthetic examples cannot be imported" in output
    assert rows(empty_db, Example) == 0
    code, output = run(empty_db, "data", "import", str(path), "--provenance", "synthetic")
    assert code == 2
    assert "'synthetic' is not one of 'human', 'human_selected'" in output
    assert rows(empty_db, Example) == 0


def test_models_show_prints_the_evaluation_the_gate_compares(db: Database) -> None:
    from models.registry import get_version
    from safeguards.metrics import Evaluation

    with db.session() as session:
        evaluation = Evaluation.from_dict(get_version(session, "v1").evaluation["evaluation"])
    code, output = run(db, "models", "show", "v1")
    assert code == 0, output
    lines = output.splitlines()
    assert lines[0].startswith("v1: generation 0, production, parent - (the clean baseline)")
    assert lines[1].startswith("trained on ")
    shown = {line.split()[0]: line for line in lines if line.startswith("  ")}
    assert set(shown) == set(evaluation.metrics)
    primary = evaluation.metrics[evaluation.primary]
    assert shown[primary.name].split()[1] == f"{primary.value:.4f}"
    assert shown[primary.name].endswith("(primary)")
    assert sum(line.endswith("(primary)") for line in lines) == 1

    code, output = run(db, "models", "show", "v9")
    assert code == 1
    assert "no model version 'v9'; `replyguard models list` shows them" in output


@pytest.mark.parametrize(
    "command",
    [
        ["models", "list"],
        ["models", "show", "v1"],
        ["generation", "list"],
        ["generation", "show"],
        ["keys", "list"],
        ["keys", "create", "--name", "app", "--role", "client"],
        ["bank", "list"],
        ["intents", "list"],
        ["reservoir", "show"],
        ["data", "stats"],
    ],
)
def test_a_command_in_the_wrong_folder_says_so_and_creates_nothing(
    tmp_path: Path, command: list[str]
) -> None:
    nowhere = tmp_path / "not-a-data-folder"
    result = CliRunner().invoke(main, ["--data-dir", str(nowhere), *command])
    assert result.exit_code == 1, result.output
    assert f"no ReplyGuard data in {nowhere.resolve()} (no database there)" in result.output
    assert "--data-dir or REPLYGUARD_DATA_DIR" in result.output
    assert not (nowhere / "replyguard.sqlite3").exists()


def test_the_commands_that_set_a_data_folder_up_still_create_it(tmp_path: Path) -> None:
    fresh = tmp_path / "fresh"
    result = CliRunner().invoke(main, ["--data-dir", str(fresh), "db", "upgrade"])
    assert result.exit_code == 0, result.output
    assert (fresh / "replyguard.sqlite3").exists()
    listed = CliRunner().invoke(main, ["--data-dir", str(fresh), "models", "list"])
    assert listed.exit_code == 0, listed.output


@pytest.mark.integration  # trains a clean baseline
def test_run_credits_the_clean_baseline_it_trains_to_itself(
    tmp_path: Path, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`run` on a new data folder trains and promotes generation 0 by itself (as `make run`
    does): the audit log and the generation's row say so, as they credit the gate's
    promotions to "gate", rather than "cli" as if someone had typed a command for it."""
    import webapp.supervisor

    # Only what `run` does before it starts the servers; the session's encoder (its
    # embeddings cached) instead of a new one.
    monkeypatch.setattr(webapp.supervisor, "run_everything", lambda *args, **kwargs: None)
    monkeypatch.setattr(Encoder, "from_config", classmethod(lambda cls, *a, **k: encoder))
    data_dir = tmp_path / "data"
    env = {
        "REPLYGUARD_DEMO_DATASET": "chatterbot",
        "REPLYGUARD_RESPONSE_MIN_SUPPORT": "1",
        "REPLYGUARD_ADAPTER_EPOCHS": "8",
    }
    result = CliRunner(env=env).invoke(main, ["--data-dir", str(data_dir), "run"])
    assert result.exit_code == 0, result.output
    assert "training the clean baseline (generation 0, human data only)..." in result.output
    assert not [line for line in LIBRARY_LINES if line in result.output], result.output
    database = Database(make_settings(data_dir))
    try:
        with database.session() as session:
            promotions = session.execute(
                select(AuditEntry.actor, AuditEntry.target, AuditEntry.reason).where(
                    AuditEntry.action == "model.promote"
                )
            ).all()
            baseline = session.scalars(select(Generation).where(Generation.number == 0)).one()
            assert promotions == [(RUN_ACTOR, "v1", "first model: the clean baseline")]
            assert baseline.requested_by == RUN_ACTOR == "replyguard run"
    finally:
        database.dispose()
