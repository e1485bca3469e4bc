"""Blocks under hostile input: no pattern can stall the service (RE2), blocks see what a
reader sees, and a block can be lifted from the API, the command line and the dashboard."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from apiflask import APIFlask
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import insert
from sqlalchemy import select

from core.db import Database
from core.keys import create_key
from core.patterns import PatternError
from core.patterns import compile_pattern
from core.schema import AuditEntry
from core.schema import ReplyBlock
from core.schema import Role
from models.curation import load_curation
from models.encoder import Encoder
from models.reply_rules import Block
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import Rule
from models.reply_rules import refusal
from tests.helpers import FAST_TRAINING
from tests.helpers import gunicorn
from tests.helpers import make_settings
from tests.test_dashboard import csrf_from
from tests.test_dashboard import make_token
from tests.test_dashboard import sign_in
from webapp.cli import main

SCREAM = "Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaah!"
# Patterns that backtrack catastrophically in Python's `re` (the second doubles its time
# with every letter of a reply: 0.1 s at 24 letters).
CATASTROPHIC = [r"(a+)+$", r"^(\w+\s*)+\?$", r"(x+x+)+y", r"(.*a){25}"]
REPLIES = [SCREAM, "abcdefghijklmnopqrstuvwxyzabcdefghij!", "x" * 40, "a" * 24 + "!"]


def test_catastrophic_patterns_are_matched_in_bounded_time() -> None:
    # In a child process, so that on an engine that backtracks the test fails on its timeout
    # instead of hanging the test run.
    code = (
        "import time\n"
        "from models.reply_rules import Block, Curation, ResponseSetConfig, refusal\n"
        f"patterns, replies = {CATASTROPHIC!r}, {REPLIES!r}\n"
        "curation = Curation(blocks=tuple(Block('pattern', p) for p in patterns))\n"
        "start = time.perf_counter()\n"
        "for _ in range(100):\n"
        "    for reply in replies:\n"
        "        refusal(reply, ResponseSetConfig(), curation)\n"
        "        curation.blocked(reply * 50)\n"
        "print(time.perf_counter() - start)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    # 1,600 matches of four patterns, a quarter of them on 2,000-character texts.
    assert float(done.stdout) < 5.0


@pytest.mark.parametrize(
    ("pattern", "feature"),
    [
        (r"(?<!don't )call me", "lookbehind"),
        (r"call(?= me)", "lookahead"),
        (r"call(?! you)", "negative lookahead"),
        (r"(ha)\1", "backreference"),
    ],
)
def test_patterns_re2_cannot_run_are_refused_with_what_to_write_instead(
    pattern: str, feature: str
) -> None:
    with pytest.raises(PatternError, match=feature) as refused:
        compile_pattern(pattern)
    assert "RE2" in str(refused.value) and "rather than" in str(refused.value)
    with pytest.raises(ValueError, match=feature):
        Block("pattern", pattern)


def test_a_stored_pattern_re2_refuses_still_blocks_with_a_time_limit() -> None:
    legacy = Block("pattern", r"(?<!never )call me", stored=True)
    assert legacy.matches("call me later")
    assert not legacy.matches("never call me later")


@pytest.mark.parametrize(
    "reply",
    [
        "call me later",
        "ｃａｌｌ ｍｅ later",
        "call\u00a0me later",
        "call  me later",
        "call\u200b me later",
        "cal\u00adl me later",
        "сall me later",  # a Cyrillic es
        "CALL ME!",
    ],
)
def test_a_pattern_sees_what_a_reader_sees(reply: str) -> None:
    assert Block("pattern", r"\bcall me\b").matches(reply)
    assert refusal(reply, ResponseSetConfig(), Curation(blocks=(Block("pattern", r"\bcall me\b"),)))


@pytest.mark.parametrize(
    "reply",
    [
        "see you later",
        "See you later!",
        "see\u200b you later",
        "see-you-later",
        "see_you_later",
        "see you la\u00adter",
        "ｓｅｅ ｙｏｕ ｌａｔｅｒ",
        "see  you  later",
        "sée you later",
    ],
)
def test_a_text_block_sees_what_a_reader_sees(reply: str) -> None:
    assert Block("text", "see you later").matches(reply)
    assert not Block("text", "see you later").matches("see you later tonight")


def _app(data_dir: Path, encoder: Encoder) -> Any:
    from webapp import create_app

    app = create_app(
        {"data_dir": str(data_dir), **FAST_TRAINING, "production_check_seconds": 0},
        encoder=encoder,
    )
    app.config["TESTING"] = True
    return app


def _staff(app: Any) -> dict[str, str]:
    with app.extensions["replyguard"].db.session() as session:
        token, _ = create_key(session, "blocks-test", Role.REVIEWER, "tester")
    return {"Authorization": f"Bearer {token}"}


def _served(client: FlaskClient, headers: dict[str, str], message: str) -> list[str]:
    body = {"message": message, "k": 10, "force": True}
    answer = client.post("/v1/suggestions", json=body, headers=headers)
    assert answer.status_code == 200, answer.get_json()
    return [s["text"] for s in answer.get_json()["suggestions"]]


def _audit(app: Any) -> list[tuple[str, str, str]]:
    with app.extensions["replyguard"].db.session() as session:
        rows = session.scalars(select(AuditEntry).order_by(AuditEntry.id)).all()
        return [(r.action, r.target, r.reason) for r in rows]


@pytest.mark.integration
def test_a_block_is_lifted_through_the_api_in_every_web_process(
    data_dir: Path, encoder: Encoder
) -> None:
    first, second = _app(data_dir, encoder), _app(data_dir, encoder)
    staff = _staff(first)
    message = "hello, how are you?"
    top = _served(second.test_client(), staff, message)[0]
    blocked = first.test_client().post(
        "/v1/bank/blocks", json={"value": top, "reason": "reads badly"}, headers=staff
    )
    assert blocked.status_code == 201
    block_id = blocked.get_json()["blocks"][0]["id"]
    assert blocked.get_json()["blocks"][0]["lifted_at"] is None
    assert top not in _served(second.test_client(), staff, message)

    client = first.test_client()
    path = f"/v1/bank/blocks/{block_id}/lift"
    assert client.post(path, json={}, headers=staff).status_code == 422
    assert client.post(path, json={"reason": "x"}).status_code == 401
    client_key = {"Authorization": f"Bearer {_key(first, Role.CLIENT)}"}
    assert client.post(path, json={"reason": "x"}, headers=client_key).status_code == 403
    lifted = client.post(path, json={"reason": "it was fine after all"}, headers=staff)
    assert lifted.status_code == 200, lifted.get_json()
    row = lifted.get_json()["blocks"][0]
    assert row["lifted_by"] and row["lift_reason"] == "it was fine after all"
    assert row["lifted_at"] is not None
    # The other web process serves it again on its next request; so does every later model
    # (training reads the curation in force: the lifted block is not in it).
    assert top in _served(second.test_client(), staff, message)
    with first.extensions["replyguard"].db.session() as session:
        assert load_curation(session).blocks == ()
    again = client.post(path, json={"reason": "twice"}, headers=staff)
    assert again.status_code == 409 and "lifted at" in again.get_json()["error"]["message"]
    missing = client.post("/v1/bank/blocks/999/lift", json={"reason": "x"}, headers=staff)
    assert missing.status_code == 404
    assert ("bank.lift", top, "it was fine after all") in _audit(first)
    listed = client.get("/v1/bank", headers=staff).get_json()["blocks"]
    assert [b["lifted_at"] is not None for b in listed] == [True]
    for app in (first, second):
        app.extensions["replyguard"].db.dispose()


def _key(app: Any, role: Role) -> str:
    with app.extensions["replyguard"].db.session() as session:
        token, _ = create_key(session, f"blocks-{role.value}", role, "tester")
    return token


@pytest.mark.integration
def test_the_api_refuses_patterns_re2_cannot_run_and_takes_catastrophic_ones(
    app: APIFlask, client: FlaskClient, reviewer_headers: dict[str, str]
) -> None:
    refused = client.post(
        "/v1/bank/blocks",
        json={"kind": "pattern", "value": r"(?<!never )call me", "reason": "x"},
        headers=reviewer_headers,
    )
    assert refused.status_code == 422
    error = refused.get_json()["error"]
    assert error["code"] == "invalid_block"
    assert "lookbehind" in error["message"] and "rather than" in error["message"]
    curated = {"text": SCREAM, "reason": "a common answer"}
    assert client.post("/v1/bank/curated", json=curated, headers=reviewer_headers).status_code
    for pattern in CATASTROPHIC:
        body = {"kind": "pattern", "value": pattern, "reason": "testing"}
        answer = client.post("/v1/bank/blocks", json=body, headers=reviewer_headers)
        assert answer.status_code == 201
    start = time.perf_counter()
    assert _served(client, reviewer_headers, "what do you say when you see a spider?")
    assert client.get("/healthz").status_code == 200
    assert time.perf_counter() - start < 5.0


@pytest.mark.integration
def test_a_catastrophic_pattern_leaves_a_real_server_answering(
    trained_dir: Path, tmp_path: Path
) -> None:
    import shutil

    data_dir = tmp_path / "data"
    shutil.copytree(trained_dir, data_dir)
    db = Database(make_settings(data_dir))
    with db.session() as session:
        token, _ = create_key(session, "scream", Role.REVIEWER, "tester")
    db.dispose()
    staff = {"Authorization": f"Bearer {token}"}
    with gunicorn(data_dir) as server:
        curated = {"text": SCREAM, "reason": "a common answer"}
        assert (
            requests.post(
                f"{server.base}/v1/bank/curated", json=curated, headers=staff, timeout=30
            ).status_code
            == 201
        )
        for pattern in CATASTROPHIC:
            body = {"kind": "pattern", "value": pattern, "reason": "testing"}
            answer = requests.post(
                f"{server.base}/v1/bank/blocks", json=body, headers=staff, timeout=30
            )
            assert answer.status_code == 201
        ask = {"message": "what do you say when you see a spider?", "k": 5, "force": True}
        # The blocks reach the worker on its next check; it must answer all along.
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline:
            assert requests.get(f"{server.base}/healthz", timeout=1).status_code == 200
            assert requests.get(f"{server.base}/readyz", timeout=1).status_code == 200
            suggested = requests.post(
                f"{server.base}/v1/suggestions", json=ask, headers=staff, timeout=5
            )
            assert suggested.status_code == 200
            time.sleep(0.2)


def test_the_cli_refuses_lookarounds_and_lifts_blocks(empty_db: Database) -> None:
    def run(*args: str) -> tuple[int, str]:
        result = CliRunner().invoke(main, ["--data-dir", str(empty_db.settings.data_dir), *args])
        return result.exit_code, result.output

    code, output = run("bank", "block", "--pattern", r"call(?= me)", "--reason", "no calls")
    assert code == 1 and "lookahead" in output and "rather than" in output
    code, output = run("bank", "block", "--pattern", r"(ha)*", "--reason", "laughs")
    assert code == 1 and "would block every reply" in output
    code, output = run("bank", "block", "--pattern", r"(a+)+$", "--reason", "screams")
    assert code == 0, output
    code, output = run("bank", "list")
    assert "block 1" in output and "in force" in output
    assert run("bank", "unblock", "1", "--reason", "")[0] != 0
    code, output = run("bank", "unblock", "1", "--reason", "too broad")
    assert code == 0 and "lifted block 1" in output, output
    code, output = run("bank", "unblock", "1", "--reason", "again")
    assert code == 1 and "was lifted at" in output
    code, output = run("bank", "unblock", "7", "--reason", "x")
    assert code == 1 and "no block has id 7" in output
    assert "lifted" in run("bank", "list")[1]
    with empty_db.session() as session:
        assert load_curation(session).blocks == ()
        actions = session.scalars(select(AuditEntry.action)).all()
    assert actions == ["bank.block", "bank.lift"]


def test_a_stored_pattern_re2_refuses_is_loaded_not_fatal(empty_db: Database) -> None:
    # A block added before patterns were RE2 (raw insert: the API refuses it now).
    with empty_db.session() as session:
        session.execute(
            insert(ReplyBlock).values(kind="pattern", value=r"(?<!never )call me", reason="old")
        )
    with empty_db.session() as session:
        curation = load_curation(session)
    assert curation.blocked("call me later") and not curation.blocked("never call me later")
    config = ResponseSetConfig()
    assert refusal("call me later", config, curation) is Rule.BLOCKED


@pytest.mark.integration
def test_the_dashboard_blocks_and_lifts_with_a_reason(app: APIFlask, client: FlaskClient) -> None:
    token, _ = make_token(app, Role.REVIEWER, "Robin")
    assert sign_in(client, token).status_code == 303
    page = client.get("/dashboard/bank")
    assert page.status_code == 200 and "Nothing is blocked" in page.get_data(as_text=True)
    csrf = csrf_from(client, "/dashboard/bank")
    refused = client.post(
        "/dashboard/bank/blocks",
        data={"kind": "pattern", "value": r"(ha)\1", "reason": "laughs", "csrf_token": csrf},
    )
    assert refused.status_code == 422 and "backreference" in refused.get_data(as_text=True)
    added = client.post(
        "/dashboard/bank/blocks",
        data={"kind": "pattern", "value": r"\bcall me\b", "reason": "no calls", "csrf_token": csrf},
    )
    assert added.status_code == 303
    page = client.get("/dashboard/bank").get_data(as_text=True)
    assert r"\bcall me\b" in page and "Lift" in page
    with app.extensions["replyguard"].db.session() as session:
        block_id = session.scalars(select(ReplyBlock.id)).one()
    path = f"/dashboard/bank/blocks/{block_id}/lift"
    assert client.post(path, data={"reason": " ", "csrf_token": csrf}).status_code == 400
    assert client.post(path, data={"reason": "ok now"}).status_code == 400  # no CSRF token
    lifted = client.post(path, data={"reason": "calls are fine now", "csrf_token": csrf})
    assert lifted.status_code == 303
    page = client.get("/dashboard/bank").get_data(as_text=True)
    assert "Lifted blocks" in page and "calls are fine now" in page
    assert client.post(path, data={"reason": "again", "csrf_token": csrf}).status_code == 409
    assert ("bank.lift", r"\bcall me\b", "calls are fine now") in _audit(app)
    with app.extensions["replyguard"].db.session() as session:
        assert load_curation(session).blocks == ()


def test_disguised_profanity_cannot_be_curated(empty_db: Database) -> None:
    from models.curation import RefusedReply
    from models.curation import add_curated
    from tests.test_content import DISGUISED

    config = ResponseSetConfig()
    for text in DISGUISED:
        with empty_db.session() as session, pytest.raises(RefusedReply, match="sensitive"):
            add_curated(session, config, text, "general", "test", "tester")
    result = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(empty_db.settings.data_dir),
            "bank",
            "add",
            "f\u200buck",
            "--reason",
            "x",
        ],
    )
    assert result.exit_code == 1 and "sensitive" in result.output
