"""Every rule of a state-changing action holds whichever front end asks (issue 11, item 9).

The rules live in the one function each action runs (worker/promotion.py, worker/pipeline.py,
core/keys.py, core/reservoir.py); the API, the dashboard and the command line call it and map
its refusal (core/actions.py) to their own answer. Each rule is tried through every front
end that offers the action.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from apiflask import APIFlask
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import select

from core.actions import ActionRefused
from core.db import Database
from core.keys import create_key
from core.schema import Generation
from core.schema import ModelVersion
from core.schema import Role
from models.registry import production
from models.registry import promote
from tests.helpers import make_settings
from tests.test_dashboard import csrf_from
from tests.test_dashboard import make_token
from tests.test_dashboard import sign_in
from webapp.cli import main
from worker.context import PipelineContext
from worker.pipeline import STAGES
from worker.pipeline import run_stage
from worker.pipeline import start_generation

pytestmark = pytest.mark.integration


def cli(data_dir: Path, *args: str) -> Any:
    return CliRunner().invoke(main, ["--data-dir", str(data_dir), *args])


def pipeline(app: APIFlask) -> PipelineContext:
    svc = app.extensions["replyguard"]
    return PipelineContext(svc.settings, svc.db, svc.encoder)


def run_until(ctx: PipelineContext, generation_id: int, last: str) -> str:
    """Run the stages up to and including ``last``; return the generation's candidate."""
    for stage in STAGES[: STAGES.index(last) + 1]:
        run_stage(ctx, generation_id, stage)
    with ctx.db.session() as session:
        candidate = session.get_one(Generation, generation_id).candidate_version
    assert candidate
    return candidate


def statuses(ctx: PipelineContext) -> dict[str, str]:
    with ctx.db.session() as session:
        return dict(session.execute(select(ModelVersion.version, ModelVersion.status)).all())


def test_no_front_end_overrides_a_candidate_whose_generation_is_running(
    app: APIFlask, client: FlaskClient, reviewer_headers: dict[str, str], data_dir: Path
) -> None:
    ctx = pipeline(app)
    generation_id = start_generation(ctx, "tests")
    candidate = run_until(ctx, generation_id, "evaluate")
    before = statuses(ctx)
    assert before[candidate] == "candidate"

    api = client.post(
        f"/v1/models/{candidate}/promote", json={"reason": "looks fine"}, headers=reviewer_headers
    )
    assert api.status_code == 409
    assert api.json["error"]["code"] == "conflict"
    assert "generation 1 is still running" in api.json["error"]["message"]

    command = cli(data_dir, "models", "promote", candidate, "--reason", "looks fine")
    assert command.exit_code == 1
    assert "generation 1 is still running" in command.output

    token, _ = make_token(app, Role.REVIEWER)
    sign_in(client, token)
    path = f"/dashboard/models/{candidate}/promote"
    page = client.post(
        path,
        data={
            "reason": "looks fine",
            "csrf_token": csrf_from(client, "/dashboard/generations/new"),
        },
    )
    assert page.status_code == 409
    assert "generation 1 is still running" in page.get_data(as_text=True)

    assert statuses(ctx) == before
    # The generation then ends as the gate decides, with a production model either way.
    for stage in STAGES[STAGES.index("gate") :]:
        run_stage(ctx, generation_id, stage)
    with ctx.db.session() as session:
        assert production(session) is not None
        assert session.get_one(Generation, generation_id).lock is None


def test_the_promote_stage_never_demotes_the_production_model(app: APIFlask) -> None:
    """The candidate made production behind the rules' back (as the API could before):
    the generation's promote stage blocks the generation and leaves production alone."""
    ctx = pipeline(app)
    generation_id = start_generation(ctx, "tests")
    candidate = run_until(ctx, generation_id, "gate")
    with ctx.db.session() as session:
        promote(session, ctx.settings, candidate, "someone", "by hand, mid-generation")
    run_stage(ctx, generation_id, "promote")
    with ctx.db.session() as session:
        current = production(session)
        generation = session.get_one(Generation, generation_id)
        assert current is not None and current.version == candidate
        assert (generation.status, generation.lock) == ("blocked", None)
        assert f"production changed to {candidate}" in generation.decision["reasons"][0]
    # And a new generation can start on it.
    assert start_generation(ctx, "tests") > generation_id


def test_rollback_and_promote_refuse_the_same_versions_everywhere(
    app: APIFlask, client: FlaskClient, reviewer_headers: dict[str, str], data_dir: Path
) -> None:
    token, _ = make_token(app, Role.REVIEWER)
    for version, action, status, says in [
        ("v1", "promote", 409, "v1 is already production"),
        ("v1", "rollback", 409, "v1 is production already"),
        ("v9", "rollback", 404, "no model version 'v9'"),
    ]:
        api = client.post(
            f"/v1/models/{version}/{action}", json={"reason": "why"}, headers=reviewer_headers
        )
        assert (api.status_code, api.json["error"]["message"].startswith(says)) == (status, True)
        command = cli(data_dir, "models", action, version, "--reason", "why")
        assert command.exit_code == 1 and says in command.output
        dashboard = app.test_client()
        sign_in(dashboard, token)
        assert dashboard.get(f"/dashboard/models/{version}/{action}").status_code == status


def test_failing_a_generation_needs_a_reason_and_a_generation(data_dir: Path) -> None:
    # The command line's one text validation refuses a blank reason before the action does.
    blank = cli(data_dir, "generation", "fail", "1", "--reason", " ")
    assert blank.exit_code == 2
    assert "reason is empty" in blank.output
    missing = cli(data_dir, "generation", "fail", "99", "--reason", "worker died")
    assert missing.exit_code == 1
    assert "no generation with id 99" in missing.output


def test_the_reservoir_is_not_rebuilt_under_a_running_generation(
    app: APIFlask, data_dir: Path
) -> None:
    generation_id = start_generation(pipeline(app), "tests")
    refused = cli(data_dir, "reservoir", "rebuild", "--reason", "new data")
    assert refused.exit_code == 1
    assert "generation 1 is queued" in refused.output
    cli(data_dir, "generation", "fail", str(generation_id), "--reason", "not needed")
    done = cli(data_dir, "reservoir", "rebuild", "--reason", "new data")
    assert done.exit_code == 0, done.output
    assert "reservoir rebuilt" in done.output


@pytest.mark.parametrize("name", ["x" * 101, "two\nlines", "bell\x07"])
def test_a_key_name_is_one_short_line(data_dir: Path, name: str) -> None:
    refused = cli(data_dir, "keys", "create", "--role", "client", "--name", name)
    # Refused by the command line's text validation (a usage error) ...
    assert refused.exit_code == 2
    assert "--name" in refused.output
    # ... and by the action itself, whichever front end calls it.
    database = Database(make_settings(data_dir))
    refusal = "one line of 1 to 100 printable characters"
    with pytest.raises(ActionRefused, match=refusal), database.session() as session:
        create_key(session, name, Role.CLIENT, "tester")
    database.dispose()
    assert cli(data_dir, "keys", "create", "--name", "  ios app  ").exit_code == 0
