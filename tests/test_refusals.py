"""A refusal carries its details, and each front end answers every refusal in one handler
with its own hints (issue 22, item 2): the API in its error shape, naming its own field
(``skip_invalid``); the command line naming its own options (``--skip-invalid``,
``--provenance``) and commands; the dashboard on the page the view named. The rules
themselves, through every front end, are tests/test_actions.py's."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from apiflask import APIFlask
from click.testing import CliRunner
from flask.testing import FlaskClient

from core.actions import Conflict
from core.actions import Unavailable
from core.generations import GenerationNotFound
from core.ingest import NO_PROVENANCE
from core.ingest import ImportFailed
from core.ingest import NothingToImport
from core.ingest import RowError
from core.schema import Role
from tests.test_dashboard import csrf_from
from tests.test_dashboard import make_token
from tests.test_dashboard import sign_in
from webapp.cli import main
from webapp.cli.base import in_cli_words
from webapp.errors import in_api_words
from worker.baseline import NoTrainingData

# What no message written in core may say: each is a front end's word for its own option.
FRONT_END_WORDS = ("--skip-invalid", "skip_invalid", "--provenance")
ROWS = [RowError(3, "'reply' is missing"), RowError(7, NO_PROVENANCE)]


def cli(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


# ---------------------------------------------------------------------------------------
# The refusals


def test_a_refusal_carries_details_a_program_can_read() -> None:
    assert Conflict("busy").details == {}
    refused = Unavailable("queue down", {"retry_after_seconds": 5})
    assert (str(refused), refused.details) == ("queue down", {"retry_after_seconds": 5})
    assert json.loads(json.dumps(refused.details)) == {"retry_after_seconds": 5}


@pytest.mark.parametrize("kind", [ImportFailed, NothingToImport])
def test_an_import_refusal_has_every_row_in_its_details_and_no_front_ends_words(
    kind: type[ImportFailed] | type[NothingToImport],
) -> None:
    errors = [RowError(line, f"problem {line}") for line in range(1, 26)]
    refused = kind(errors)
    assert json.loads(json.dumps(refused.details)) == {
        "rows": [{"line": line, "error": f"problem {line}"} for line in range(1, 26)]
    }
    assert (refused.status, refused.code) == (422, "invalid_input")
    assert "line 1: problem 1" in str(refused)
    assert not any(word in str(refused) for word in FRONT_END_WORDS)


# ---------------------------------------------------------------------------------------
# The API


def test_the_api_says_an_import_refusal_with_its_field_and_its_rows_by_index() -> None:
    failed = ImportFailed(ROWS)
    assert in_api_words(failed) == (
        "2 invalid example(s), nothing imported; fix them or set skip_invalid",
        {
            "rows": [
                {"index": 3, "error": "'reply' is missing"},
                {"index": 7, "error": NO_PROVENANCE},
            ]
        },
    )
    message, details = in_api_words(NothingToImport(ROWS))
    assert message == "all 2 example(s) are invalid: nothing imported"
    assert [row["index"] for row in details["rows"]] == [3, 7]


def test_the_api_passes_any_other_refusal_on_as_it_is() -> None:
    assert in_api_words(Conflict("busy", {"generation": 4})) == ("busy", {"generation": 4})
    assert in_api_words(GenerationNotFound("no generation with id 9")) == (
        "no generation with id 9",
        {},
    )


@pytest.mark.integration
def test_the_api_answers_a_refusal_with_its_details_in_the_error_shape(
    app: APIFlask, client: FlaskClient, reviewer_headers: dict[str, str]
) -> None:
    def refuse() -> None:
        raise Conflict("generation 4 is running", {"generation": 4})

    app.add_url_rule("/v1/test-refusal", "test_refusal", refuse)
    answer = client.get("/v1/test-refusal")
    assert answer.status_code == 409
    assert answer.json == {
        "error": {
            "status": 409,
            "code": "conflict",
            "message": "generation 4 is running",
            "details": {"generation": 4},
        }
    }
    rows = [{"message": "hi", "reply": "hello"}, {"message": "hi again", "reply": "  "}]
    refused = client.post(
        "/v1/examples", json={"examples": rows, "provenance": "human"}, headers=reviewer_headers
    )
    assert refused.status_code == 422
    assert refused.json["error"] == {
        "status": 422,
        "code": "invalid_input",
        "message": "1 invalid example(s), nothing imported; fix them or set skip_invalid",
        "details": {
            "rows": [
                {
                    "index": 1,
                    "error": "'reply' is empty or only whitespace and invisible characters",
                }
            ]
        },
    }


# ---------------------------------------------------------------------------------------
# The command line


def test_the_command_line_hints_its_own_options_for_invalid_rows() -> None:
    assert in_cli_words(ImportFailed(ROWS)) == (
        "2 invalid row(s), nothing imported:\n"
        "  line 3: 'reply' is missing\n"
        f"  line 7: {NO_PROVENANCE}\n"
        "Rows without a 'provenance' column: pass --provenance human (or human_selected).\n"
        "Fix the rows, or pass --skip-invalid to use the valid rows only."
    )
    # Every row has a provenance: no hint about giving one.
    assert in_cli_words(ImportFailed(ROWS[:1])) == (
        "1 invalid row(s), nothing imported:\n"
        "  line 3: 'reply' is missing\n"
        "Fix the rows, or pass --skip-invalid to use the valid rows only."
    )
    # Nothing valid: the options cannot help, so none is named.
    assert in_cli_words(NothingToImport(ROWS)) == str(NothingToImport(ROWS))


def test_data_import_says_the_refusal_with_its_hints(tmp_path: Path) -> None:
    data = tmp_path / "rows.csv"
    data.write_text("message,reply\nhi,hello\nno reply here,\n")
    result = cli("--data-dir", str(tmp_path / "data"), "data", "import", str(data))
    assert result.exit_code == 1
    assert result.output == (
        "Error: 2 invalid row(s), nothing imported:\n"
        f"  line 2: {NO_PROVENANCE}\n"
        "  line 3: 'reply' is empty or only whitespace and invisible characters\n"
        "Rows without a 'provenance' column: pass --provenance human (or human_selected).\n"
        "Fix the rows, or pass --skip-invalid to use the valid rows only.\n"
    )


def test_the_command_line_names_the_list_for_an_unknown_generation(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    assert cli("--data-dir", data_dir, "db", "upgrade").exit_code == 0
    hint = "Error: no generation with id 99; `replyguard generation list` shows them\n"
    for command in (("show", "99"), ("fail", "99", "--reason", "its worker died")):
        result = cli("--data-dir", data_dir, "generation", *command)
        assert (result.exit_code, result.output) == (1, hint), command


@pytest.mark.parametrize(
    "stop",
    [NoTrainingData("no human example to train on"), ValueError("the benchmark is empty")],
)
def test_simulate_frames_what_stops_its_run_and_keeps_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stop: Exception
) -> None:
    """A refusal (answered by the one handler, in the frame the command set) and a library's
    ValueError (answered by the command) read alike; the run's folder is removed."""
    from models.encoder import Encoder
    from worker import simulation

    def run(*args: Any, **kwargs: Any) -> None:
        raise stop

    # Everything before the run, at no cost: no data read, no encoder loaded.
    monkeypatch.setattr(simulation, "simulation_rows", lambda *args: ([], None))
    monkeypatch.setattr(simulation, "traffic_order", lambda *args: (set(), []))
    monkeypatch.setattr(Encoder, "from_config", lambda *args: None)
    monkeypatch.setattr(simulation, "run_simulation", run)
    out = tmp_path / "out"
    result = cli("simulate", "--policy", "replace", "--slice", "1", "--out", str(out))
    assert result.exit_code == 1
    assert result.output == (
        f"Error: the simulation stopped, nothing was written: {stop} (is --data large "
        "enough? the demo has about 5,000 pairs in 36 niches)\n"
    )
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------------------------------
# The dashboard


@pytest.mark.integration
def test_the_dashboard_shows_a_refusal_on_the_page_the_view_named(
    app: APIFlask, client: FlaskClient
) -> None:
    token, _ = make_token(app, Role.REVIEWER)
    sign_in(client, token)
    csrf = csrf_from(client, "/dashboard/bank")
    lifted = client.post(
        "/dashboard/bank/blocks/999/lift", data={"csrf_token": csrf, "reason": "not needed"}
    )
    assert lifted.status_code == 404
    text = lifted.get_data(as_text=True)
    # The response set's page again (its block form), saying why.
    assert "no block has id 999" in text
    assert 'action="/dashboard/bank/blocks"' in text


@pytest.mark.integration
def test_a_refusal_from_a_view_that_named_no_page_gets_the_error_page(
    app: APIFlask, client: FlaskClient
) -> None:
    def refuse() -> None:
        raise Conflict("generation 4 is running")

    app.add_url_rule("/dashboard/test-refusal", "dashboard.test_refusal", refuse)
    token, _ = make_token(app, Role.REVIEWER)
    sign_in(client, token)
    answer = client.get("/dashboard/test-refusal")
    assert answer.status_code == 409
    text = answer.get_data(as_text=True)
    assert "409 Conflict" in text
    assert "generation 4 is running" in text
