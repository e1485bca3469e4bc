"""The JSON API through the Flask test client: happy paths and every kind of bad input."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from core.schema import Example
from core.schema import IncomingMessage
from core.schema import Role
from tests.helpers import at_once

SUGGEST = "/v1/suggestions"


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error: dict[str, Any] = response.json["error"]
    assert error["status"] == status
    assert error["message"]
    assert set(error) == {"status", "code", "message", "details"}
    assert "Traceback" not in response.get_data(as_text=True)
    if status == 422 and error["code"] == "invalid_input":
        # A client fixes bad input by field (or by row of a batch): every such 422 names them.
        assert error["details"].get("fields") or error["details"].get("rows"), error
    return error


def test_suggestions_have_version_and_k_distinct_replies(client, client_headers) -> None:  # type: ignore[no-untyped-def]
    response = client.post(
        SUGGEST, data='{"message": "Hello, how are you?", "k": 4}', headers=client_headers
    )
    assert response.status_code == 200
    body = response.json
    assert body["model_version"] == "v1"
    texts = [s["text"] for s in body["suggestions"]]
    assert len(texts) == 4
    assert len(set(texts)) == 4
    assert all(
        isinstance(s["reply_id"], int) and isinstance(s["score"], float)
        for s in body["suggestions"]
    )


def test_default_k_is_three(client, client_headers) -> None:  # type: ignore[no-untyped-def]
    # Forced: whether the model is confident enough about this message is triggering's test.
    body = {"message": "What is AI?", "force": True}
    response = client.post(SUGGEST, json=body, headers=client_headers)
    assert len(response.json["suggestions"]) == 3


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        (b"", 422, "message: Missing data for required field"),
        (b"\xff\xfe\x00", 400, "not UTF-8"),
        (b'{"message": ', 400, "not valid JSON"),
        (b"[1, 2]", 400, "must be a JSON object"),
        (b'"hello"', 400, "must be a JSON object"),
        (b"{}", 422, "message: Missing data"),
        (b'{"message": ""}', 422, "message is empty"),
        (b'{"message": " \\n\\t "}', 422, "message is empty or only whitespace"),
        (b'{"message": 42}', 422, "message: Not a valid string"),
        (b'{"message": null}', 422, "message"),
        (b'{"message": "hi", "k": 0}', 422, "k must be between 1 and 10"),
        (b'{"message": "hi", "k": 11}', 422, "k must be between 1 and 10"),
        (b'{"message": "hi", "k": "3"}', 422, "k: Not a valid integer"),
        (b'{"message": "hi", "k": 2.5}', 422, "k: Not a valid integer"),
        (b'{"message": "hi", "k": true}', 422, "k: Not a valid integer"),
        (b'{"message": "hi", "niche": ""}', 422, "niche"),
        (b'{"message": "hi", "user": "bob"}', 422, "user: Unknown field"),
        (('{"message": "' + "a" * 1001 + '"}').encode(), 422, "longer than 1000 characters"),
        (('{"message": "' + "a" * 300_000 + '"}').encode(), 413, "too large"),
    ],
)
def test_bad_suggestion_requests(
    client, client_headers, body: bytes, status: int, fragment: str
) -> None:  # type: ignore[no-untyped-def]
    error = error_of(client.post(SUGGEST, data=body, headers=client_headers), status)
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({}, "missing or unknown API key"),
        ({"Authorization": "Bearer rg_not-a-real-key"}, "missing or unknown API key"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "missing or unknown API key"),
    ],
)
def test_suggestions_need_a_valid_key(client, headers: dict[str, str], fragment: str) -> None:  # type: ignore[no-untyped-def]
    error = error_of(client.post(SUGGEST, json={"message": "hi"}, headers=headers), 401)
    assert fragment in error["message"]


def test_incoming_messages_are_recorded_without_identity(app, client, client_headers, db) -> None:  # type: ignore[no-untyped-def]
    client.post(
        SUGGEST,
        json={"message": "  Where is the station? ", "niche": "travel"},
        headers=client_headers,
    )
    # Written in the background within half a second; flushing now makes the test exact.
    app.extensions["replyguard"].incoming.flush()
    with db.session() as session:
        newest = session.scalars(
            select(IncomingMessage).order_by(IncomingMessage.id.desc())
        ).first()
    assert newest is not None
    assert (newest.message, newest.niche) == ("Where is the station?", "travel")
    assert {c.name for c in IncomingMessage.__table__.columns} == {
        "id",
        "message",
        "niche",
        "created_at",
    }


def test_incoming_recording_can_be_turned_off(data_dir, encoder, db) -> None:  # type: ignore[no-untyped-def]
    from core.keys import create_key
    from core.schema import Role
    from webapp import create_app

    app = create_app({"data_dir": str(data_dir), "record_incoming": False}, encoder=encoder)
    with db.session() as session:
        token, _ = create_key(session, "c", Role.CLIENT, "tester")
        before = session.scalar(select(func.count(IncomingMessage.id)))
    response = app.test_client().post(
        SUGGEST, json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    assert app.extensions["replyguard"].incoming.flush() == 0
    with db.session() as session:
        assert session.scalar(select(func.count(IncomingMessage.id))) == before
    app.extensions["replyguard"].db.dispose()


def test_incoming_retention_keeps_the_newest(app, db) -> None:  # type: ignore[no-untyped-def]
    log = app.extensions["replyguard"].incoming
    log.retention = 5
    for i in range(12):
        log.record(f"message {i}", None)
    log.flush()
    assert log.trim() > 7  # the demo's traffic is older still
    with db.session() as session:
        kept = list(session.scalars(select(IncomingMessage.message).order_by(IncomingMessage.id)))
    assert kept == [f"message {i}" for i in range(7, 12)]


def test_feedback_chosen_is_human_selected_and_typed_is_human(client, client_headers, db) -> None:  # type: ignore[no-untyped-def]
    chosen = client.post(
        "/v1/feedback",
        json={
            "message": "Lunch at noon?",
            "suggestions": ["Sure!", "Can't today."],
            "chosen": 1,
            "model_version": "v1",
            "niche": "plans",
        },
        headers=client_headers,
    )
    typed = client.post(
        "/v1/feedback",
        json={"message": "Lunch at noon?", "suggestions": ["Sure!"], "typed": "Make it 1pm?"},
        headers=client_headers,
    )
    assert chosen.status_code == typed.status_code == 201
    with db.session() as session:
        a = session.get_one(Example, chosen.json["example_id"])
        b = session.get_one(Example, typed.json["example_id"])
    assert (a.reply, a.provenance, a.model_version, a.niche) == (
        "Can't today.",
        "human_selected",
        "v1",
        "plans",
    )
    assert (b.reply, b.provenance, b.model_version, b.niche) == (
        "Make it 1pm?",
        "human",
        None,
        "general",
    )


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({"message": "hi", "suggestions": ["a"]}, "typed", "exactly one of 'chosen'"),
        (
            {"message": "hi", "suggestions": ["a"], "chosen": 0, "typed": "b"},
            "chosen",
            "exactly one of 'chosen'",
        ),
        (
            {"message": "hi", "suggestions": ["a"], "chosen": 1},
            "chosen",
            "must index the 1 suggestion(s)",
        ),
        ({"message": "hi", "suggestions": ["a"], "chosen": -1}, "chosen", "must index"),
        (
            {"message": "hi", "suggestions": "a", "chosen": 0},
            "suggestions",
            "suggestions: Not a valid list",
        ),
        ({"message": "hi", "suggestions": [1], "chosen": 0}, "suggestions", "Not a valid string"),
        ({"message": "hi", "suggestions": [], "typed": "  "}, "typed", "typed is empty"),
        ({"message": "", "suggestions": [], "typed": "x"}, "message", "message is empty"),
        ({"suggestions": [], "typed": "x"}, "message", "message: Missing data"),
        ({"message": "hi", "suggestions": ["a"] * 11, "chosen": 0}, "suggestions", "suggestions"),
    ],
)
def test_bad_feedback(  # type: ignore[no-untyped-def]
    client, client_headers, body: dict[str, Any], field: str, fragment: str
) -> None:
    error = error_of(client.post("/v1/feedback", json=body, headers=client_headers), 422)
    assert fragment in error["message"]
    assert list(error["details"]["fields"]) == [field]


def test_bulk_examples_need_a_staff_role(client, client_headers, reviewer_headers) -> None:  # type: ignore[no-untyped-def]
    body = {"examples": [{"message": "m1", "reply": "r1", "niche": "n"}], "provenance": "human"}
    error_of(client.post("/v1/examples", json=body, headers=client_headers), 403)
    ok = client.post("/v1/examples", json=body, headers=reviewer_headers)
    assert ok.status_code == 201
    assert ok.json == {"added": 1, "duplicates": 0, "skipped": []}
    body["examples"] = [{"message": "m2", "reply": "r2", "conversation": "ticket 9"}]
    assert client.post("/v1/examples", json=body, headers=reviewer_headers).status_code == 201
    with client.application.extensions["replyguard"].db.session() as session:
        stored = session.scalars(select(Example.conversation).where(Example.message == "m2"))
        assert stored.one() == "import:ticket 9"


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"examples": []}, 422, "examples: give at least one example"),
        ({"examples": [{"message": "m", "reply": "r"}]}, 422, "1 invalid example(s)"),
        ({"examples": [{"message": "m", "reply": "r"}], "provenance": "robot"}, 422, "provenance"),
        ({"examples": [{"message": "m"}], "provenance": "human"}, 422, "reply"),
        ({"examples": "nope", "provenance": "human"}, 422, "examples"),
        (
            {"examples": [{"message": "m", "reply": "r"}] * 1001, "provenance": "human"},
            413,
            "at most 1000",
        ),
    ],
)
def test_bad_bulk_examples(
    client, reviewer_headers, body: dict[str, Any], status: int, fragment: str
) -> None:  # type: ignore[no-untyped-def]
    error = error_of(client.post("/v1/examples", json=body, headers=reviewer_headers), status)
    assert fragment in error["message"]


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        (SUGGEST, {"message": "hi", "force": 0.0}, "force"),
        (SUGGEST, {"message": "hi", "force": "yes"}, "force"),
        (SUGGEST, {"message": "hi", "force": 1}, "force"),
        (
            "/v1/examples",
            {"examples": [{"message": "m", "reply": "r"}], "skip_invalid": "on"},
            "skip_invalid",
        ),
    ],
)
def test_booleans_are_json_booleans(
    client, reviewer_headers, path: str, body: dict[str, Any], field: str
) -> None:  # type: ignore[no-untyped-def]
    # Found by schemathesis (tests/test_openapi.py): marshmallow's Boolean took 0.0, "yes",
    # 1 and "on" where the document says boolean; "force": 0.0 was served as false.
    error = error_of(client.post(path, json=body, headers=reviewer_headers), 422)
    assert error["code"] == "invalid_input"
    assert error["details"]["fields"] == {field: ["Not a valid boolean."]}


def test_bulk_rows_errors_name_each_row_and_skip_invalid_imports_the_rest(
    client, reviewer_headers
) -> None:  # type: ignore[no-untyped-def]
    rows = [{"message": "ok", "reply": "fine"}, {"message": "  ", "reply": "x"}]
    error = error_of(
        client.post(
            "/v1/examples", json={"examples": rows, "provenance": "human"}, headers=reviewer_headers
        ),
        422,
    )
    assert error["details"]["rows"] == [
        {"index": 1, "error": "'message' is empty or only whitespace and invisible characters"}
    ]
    partial = client.post(
        "/v1/examples",
        json={"examples": rows, "provenance": "human", "skip_invalid": True},
        headers=reviewer_headers,
    )
    assert partial.status_code == 201
    assert partial.json["added"] == 1
    assert partial.json["skipped"] == [
        {"index": 1, "error": "'message' is empty or only whitespace and invisible characters"}
    ]


def test_models_lists_production(client, client_headers) -> None:  # type: ignore[no-untyped-def]
    body = client.get("/v1/models", headers=client_headers).json
    assert body["production"] == body["serving"] == "v1"
    assert body["models"][0]["status"] == "production"
    assert body["models"][0]["created_at"].endswith("+00:00")


def test_health_and_readiness(client) -> None:  # type: ignore[no-untyped-def]
    assert client.get("/healthz").json == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json["checks"] == {"database": "ok", "model": "v1"}


def test_not_ready_without_a_model(tmp_path, encoder) -> None:  # type: ignore[no-untyped-def]
    from core.keys import create_key
    from core.schema import Role
    from webapp import create_app

    app = create_app({"data_dir": str(tmp_path / "fresh")}, encoder=encoder)
    assert app.test_client().get("/readyz").status_code == 503
    with app.extensions["replyguard"].db.session() as session:
        token, _ = create_key(session, "c", Role.CLIENT, "tester")
    response = app.test_client().post(
        SUGGEST, json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
    )
    error = error_of(response, 503)
    assert error["code"] == "no_model"
    assert "train-baseline" in error["message"]
    app.extensions["replyguard"].db.dispose()


def test_unknown_paths_and_methods(client, client_headers) -> None:  # type: ignore[no-untyped-def]
    assert error_of(client.get("/v1/nothing", headers=client_headers), 404)["code"] == "not_found"
    assert (
        error_of(client.get(SUGGEST, headers=client_headers), 405)["code"] == "method_not_allowed"
    )


def test_openapi_document_is_generated(client) -> None:  # type: ignore[no-untyped-def]
    spec = client.get("/openapi.json").json
    assert spec["openapi"].startswith("3.")
    assert {
        "/v1/suggestions",
        "/v1/feedback",
        "/v1/examples",
        "/v1/models",
        "/healthz",
        "/readyz",
    } <= set(spec["paths"])
    suggest_schema = spec["components"]["schemas"]["SuggestIn"]
    assert suggest_schema["required"] == ["message"]
    assert suggest_schema["additionalProperties"] is False


def test_unexpected_errors_hide_their_text(app, client, client_headers, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    holder = app.extensions["replyguard"].holder

    def explode() -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(holder, "get", explode)
    response = client.post(SUGGEST, json={"message": "hi"}, headers=client_headers)
    error = error_of(response, 500)
    assert "secret" not in response.get_data(as_text=True)
    assert error["code"] == "internal_error"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/v1/generations"),
        ("get", "/v1/generations"),
        ("get", "/v1/generations/1"),
        ("post", "/v1/models/v1/promote"),
        ("post", "/v1/models/v1/rollback"),
        ("get", "/v1/audit"),
    ],
)
def test_client_keys_get_403_on_the_product_teams_endpoints(
    client, client_headers, method: str, path: str
) -> None:  # type: ignore[no-untyped-def]
    response = getattr(client, method)(
        path, json={"reason": "x"} if method == "post" else None, headers=client_headers
    )
    error = error_of(response, 403)
    assert error["code"] == "forbidden"
    # It says which key would do.
    assert error["message"].endswith(
        "it takes a reviewer or admin key (`replyguard keys create --role ...`)"
    )


def test_an_admin_endpoint_names_the_admin_role_and_a_wrong_method_the_right_one(
    client, reviewer_headers
) -> None:  # type: ignore[no-untyped-def]
    refused = error_of(client.get("/v1/keys", headers=reviewer_headers), 403)
    assert refused["message"].endswith(
        "it takes an admin key (`replyguard keys create --role ...`)"
    )
    wrong = error_of(client.get("/v1/suggestions", headers=reviewer_headers), 405)
    head, _, methods = wrong["message"].partition(": use ")
    assert head == "method not allowed on this endpoint"
    assert set(methods.split(", ")) == {"OPTIONS", "POST"}


def test_generation_zero_is_listed_with_its_evaluation(client, reviewer_headers) -> None:  # type: ignore[no-untyped-def]
    listed = client.get("/v1/generations", headers=reviewer_headers).json["generations"]
    assert [(g["number"], g["status"], g["candidate_version"]) for g in listed] == [
        (0, "passed", "v1")
    ]
    shown = client.get(f"/v1/generations/{listed[0]['id']}", headers=reviewer_headers).json
    figures = {f["name"] for f in shown["metrics"]["candidate"]["figures"]}
    assert {"similarity@3", "recall@3", "tail_similarity@3", "vendi", "distinct_share"} <= figures
    assert (
        error_of(client.get("/v1/generations/999", headers=reviewer_headers), 404)["message"]
        == "no generation with id 999"
    )


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        ("/v1/models/v1/promote", {}, 422, "reason: Missing data"),
        ("/v1/models/v1/promote", {"reason": "  "}, 422, "reason is empty"),
        ("/v1/models/v1/promote", {"reason": "why not"}, 409, "already production"),
        ("/v1/models/v9/rollback", {"reason": "oops"}, 404, "no model version 'v9'"),
        ("/v1/models/v1/rollback", {"reason": "oops"}, 409, "production already"),
    ],
)
def test_bad_model_actions(
    client, reviewer_headers, path: str, body: dict[str, Any], status: int, fragment: str
) -> None:  # type: ignore[no-untyped-def]
    error = error_of(client.post(path, json=body, headers=reviewer_headers), status)
    assert fragment in error["message"]


def test_audit_log_lists_the_first_promotion(client, reviewer_headers) -> None:  # type: ignore[no-untyped-def]
    entries = client.get("/v1/audit?limit=5", headers=reviewer_headers).json["entries"]
    assert entries[-1]["action"] == "model.promote"
    assert entries[-1]["target"] == "v1"
    error_of(client.get("/v1/audit?limit=0", headers=reviewer_headers), 422)


def test_incoming_messages_are_written_in_the_background(app, db) -> None:  # type: ignore[no-untyped-def]
    import time

    log = app.extensions["replyguard"].incoming
    with db.session() as session:
        before = session.scalar(select(func.count(IncomingMessage.id)))
    for i in range(3):
        log.record(f"background {i}", "chat")
    deadline = time.monotonic() + 10
    count = before
    while time.monotonic() < deadline and count < before + 3:
        time.sleep(0.1)
        with db.session() as session:
            count = session.scalar(select(func.count(IncomingMessage.id)))
    assert count == before + 3


# --- Hostile input: one text validation everywhere, limits, parser limits, auth first -------

SURROGATE = "hi \ud800"


def post_json(client: Any, path: str, body: Any, headers: dict[str, str]) -> Any:
    """POST ``body`` as JSON with \\u escapes, as a client library sends it: a lone surrogate
    travels as the escape ``\\ud800``."""
    return client.post(path, data=json.dumps(body), headers=headers)


def suggestion(**fields: Any) -> tuple[str, dict[str, Any]]:
    return SUGGEST, {"message": "hello there", **fields}


def feedback(**fields: Any) -> tuple[str, dict[str, Any]]:
    return "/v1/feedback", {"message": "lunch?", "suggestions": ["Sure!"], "chosen": 0, **fields}


def typed(**fields: Any) -> tuple[str, dict[str, Any]]:
    return "/v1/feedback", {"message": "lunch?", "suggestions": ["Sure!"], "typed": "ok", **fields}


# Every text field of every endpoint, each named as its error message names it.
TEXT_FIELDS = {
    "suggest message": (lambda v: suggestion(message=v), "message"),
    "suggest niche": (lambda v: suggestion(niche=v), "niche"),
    "feedback message": (lambda v: feedback(message=v), "message"),
    "feedback shown suggestion": (lambda v: feedback(suggestions=["Sure!", v]), "suggestion"),
    "feedback typed": (lambda v: typed(typed=v), "typed"),
    "feedback niche": (lambda v: feedback(niche=v), "niche"),
    "feedback model_version": (lambda v: feedback(model_version=v), "model_version"),
    "promote reason": (lambda v: ("/v1/models/v1/promote", {"reason": v}), "reason"),
    "rollback reason": (lambda v: ("/v1/models/v1/rollback", {"reason": v}), "reason"),
}
# Each kind of bad text, and what the message says about it.
BAD_TEXTS = {
    "lone surrogate": (SURROGATE, "is not valid Unicode: a lone surrogate U+D800 at character 3"),
    "NUL": ("a\x00b", "has a control character U+0000 at character 1"),
    "escape": ("a\x1b[31mb", "has a control character U+001B"),
    "zero-width only": ("\u200b\ufeff \u2060", "is empty or only whitespace and invisible"),
    "Hangul filler only": ("\u3164", "is empty or only whitespace and invisible"),
}


@pytest.mark.parametrize("kind", BAD_TEXTS)
@pytest.mark.parametrize("field", TEXT_FIELDS)
def test_every_text_field_refuses_every_kind_of_bad_text(
    client, reviewer_headers, field: str, kind: str
) -> None:  # type: ignore[no-untyped-def]
    build, name = TEXT_FIELDS[field]
    value, fragment = BAD_TEXTS[kind]
    path, body = build(value)
    error = error_of(post_json(client, path, body, reviewer_headers), 422)
    assert f"{name} {fragment}" in error["message"]


@pytest.mark.parametrize(
    ("field", "limit"),
    [
        ("suggest message", 1000),
        ("suggest niche", 100),
        ("feedback message", 1000),
        ("feedback shown suggestion", 2000),
        ("feedback typed", 2000),
        ("feedback niche", 100),
        ("feedback model_version", 64),
        ("promote reason", 2000),
    ],
)
def test_every_text_field_has_its_kinds_length_limit(
    client, reviewer_headers, field: str, limit: int
) -> None:  # type: ignore[no-untyped-def]
    build, name = TEXT_FIELDS[field]
    path, body = build("y" * (limit + 1))
    error = error_of(post_json(client, path, body, reviewer_headers), 422)
    assert f"{name} is longer than {limit} characters (it has {limit + 1})" in error["message"]


def test_a_200000_character_suggestion_is_refused_and_nothing_stored(
    client, client_headers, db
) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        before = session.scalar(select(func.count(Example.id)))
    body = {"message": "m", "suggestions": ["y" * 200_000], "chosen": 0}
    error = error_of(post_json(client, "/v1/feedback", body, client_headers), 422)
    assert error["details"]["fields"] == {
        "suggestions": {"0": ["suggestion is longer than 2000 characters (it has 200000)"]}
    }
    assert "suggestions.0: suggestion is longer than 2000" in error["message"]
    with db.session() as session:
        assert session.scalar(select(func.count(Example.id))) == before


def test_texts_at_their_limits_with_inner_invisibles_and_line_breaks_are_stored(
    client, client_headers, db
) -> None:  # type: ignore[no-untyped-def]
    message = " " + "m" * 999 + "\n "
    reply = "first line\nsecond \u200d line \U0001f44d\ufe0f"
    body = {"message": message, "suggestions": [reply], "chosen": 0, "niche": "n" * 100}
    response = post_json(client, "/v1/feedback", body, client_headers)
    assert response.status_code == 201, response.json
    with db.session() as session:
        row = session.get_one(Example, response.json["example_id"])
    assert (row.message, row.reply, row.niche) == ("m" * 999, reply, "n" * 100)


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"niche": "   "}, "niche is empty or only whitespace"),
        ({"niche": "a\tb"}, "niche has a control character U+0009 at character 1; a niche is one"),
        ({"niche": "a\nb"}, "niche has a control character U+000A"),
        ({"model_version": "v99"}, "model_version: there is no model version 'v99'"),
    ],
)
def test_feedback_refuses_blank_niches_and_unknown_model_versions(
    client, client_headers, db, body: dict[str, Any], fragment: str
) -> None:  # type: ignore[no-untyped-def]
    with db.session() as session:
        before = session.scalar(select(func.count(Example.id)))
    for build in (feedback, typed):
        path, full = build(**body)
        error = error_of(post_json(client, path, full, client_headers), 422)
        assert fragment in error["message"]
        assert list(error["details"]["fields"]) == [next(iter(body))]
    with db.session() as session:
        assert session.scalar(select(func.count(Example.id))) == before


@pytest.mark.parametrize(
    ("row", "fragment"),
    [
        ({"message": SURROGATE, "reply": "r"}, "'message' is not valid Unicode"),
        ({"message": "m", "reply": SURROGATE}, "'reply' is not valid Unicode"),
        ({"message": "m", "reply": "r", "niche": SURROGATE}, "'niche' is not valid Unicode"),
        ({"message": "m", "reply": "r\x07"}, "'reply' has a control character U+0007"),
        ({"message": "m", "reply": "\u200b"}, "'reply' is empty or only whitespace and invisible"),
        ({"message": "m", "reply": "y" * 2001}, "'reply' is longer than 2000 characters"),
        ({"message": "m" * 1001, "reply": "r"}, "'message' is longer than 1000 characters"),
        ({"message": "m", "reply": "r", "niche": " "}, "'niche' is empty"),
        ({"message": "m", "reply": "r", "niche": "n" * 101}, "'niche' is longer than 100"),
        ({"message": "m", "reply": "r", "provenance": "synthetic"}, "synthetic examples cannot"),
    ],
)
def test_bulk_rows_go_through_the_same_text_validation(
    client, reviewer_headers, row: dict[str, Any], fragment: str
) -> None:  # type: ignore[no-untyped-def]
    rows = [{"message": "fine", "reply": "ok"}, row]
    body = {"examples": rows, "provenance": "human"}
    error = error_of(post_json(client, "/v1/examples", body, reviewer_headers), 422)
    [refused] = error["details"]["rows"]
    assert refused["index"] == 1
    assert fragment in refused["error"]
    partial = post_json(client, "/v1/examples", {**body, "skip_invalid": True}, reviewer_headers)
    assert (partial.status_code, partial.json["added"]) == (201, 1)


def test_synthetic_imports_are_refused_with_the_reason(client, reviewer_headers) -> None:  # type: ignore[no-untyped-def]
    body = {"examples": [{"message": "m", "reply": "r"}], "provenance": "synthetic"}
    error = error_of(post_json(client, "/v1/examples", body, reviewer_headers), 422)
    assert "provenance: synthetic examples cannot be imported" in error["message"]
    assert "records the generation and model version" in error["message"]


BIG_INT = "9" * 5000
# Bodies the JSON parser cannot take, and what a caller with a key is told.
UNPARSABLE = [
    (b'{"message": "hi", "k": ' + BIG_INT.encode() + b"}", 400, "at most 4300 digits"),
    (b'{"message": "hi", "k": NaN}', 400, "NaN is not a JSON value"),
    (b'{"message": "hi", "k": -Infinity}', 400, "-Infinity is not a JSON value"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "nests arrays or objects too deeply"),
    (b"\xff\xfe", 400, "not UTF-8"),
    (b"   ", 422, "message: Missing data for required field"),
    (b"\n\t", 422, "message: Missing data for required field"),
    (b"x" * 300_000, 413, "too large"),
]


@pytest.mark.parametrize(("body", "status", "fragment"), UNPARSABLE)
def test_bodies_the_parser_cannot_take_are_a_json_4xx(
    client, client_headers, body: bytes, status: int, fragment: str
) -> None:  # type: ignore[no-untyped-def]
    error = error_of(client.post(SUGGEST, data=body, headers=client_headers), status)
    assert fragment in error["message"]


BODY_ENDPOINTS = [
    SUGGEST,
    "/v1/feedback",
    "/v1/examples",
    "/v1/models/v1/promote",
    "/v1/models/v1/rollback",
    "/v1/generations",
]


@pytest.mark.parametrize("path", BODY_ENDPOINTS)
@pytest.mark.parametrize("body", [b for b, _, _ in UNPARSABLE], ids=range(len(UNPARSABLE)))
@pytest.mark.parametrize("token", [None, "rg_forged"])
def test_without_a_valid_key_the_body_is_never_read(
    client, path: str, body: bytes, token: str | None
) -> None:  # type: ignore[no-untyped-def]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    # 401 even for a body larger than the limit: nothing read it.
    assert error_of(client.post(path, data=body, headers=headers), 401)["code"] == "unauthorized"


def test_a_client_key_gets_403_before_its_body_is_read(client, client_headers) -> None:  # type: ignore[no-untyped-def]
    for path in BODY_ENDPOINTS[2:]:
        response = client.post(path, data=UNPARSABLE[0][0], headers=client_headers)
        assert error_of(response, 403)["code"] == "forbidden"


@pytest.mark.parametrize("query", ["limit=0", "limit=1001", "limit=abc"])
def test_query_string_errors_have_the_standard_shape(client, reviewer_headers, query: str) -> None:  # type: ignore[no-untyped-def]
    error = error_of(client.get(f"/v1/audit?{query}", headers=reviewer_headers), 422)
    assert error["code"] == "invalid_input"
    assert error["message"].startswith("invalid input: limit: ")
    assert list(error["details"]["fields"]) == ["limit"]


def test_readiness_never_shows_a_file_path(data_dir, encoder, settings) -> None:  # type: ignore[no-untyped-def]
    from core.keys import create_key
    from core.schema import Role
    from webapp import create_app

    # The production artifact is damaged before the service starts: nothing can be served.
    (data_dir / "models" / "v1" / "bank_embeddings.npy").write_bytes(b"\x00" * 10)
    app = create_app({"data_dir": str(data_dir)}, encoder=encoder)
    svc = app.extensions["replyguard"]
    assert str(data_dir) in svc.holder.last_error  # the log keeps the whole story
    ready = app.test_client().get("/readyz")
    assert ready.status_code == 503
    said = ready.json["checks"]["model"]
    assert said == (
        "production model v1 was refused: <v1>: bank_embeddings.npy is corrupt (checksum mismatch)"
    )
    with svc.db.session() as session:
        token, _ = create_key(session, "c", Role.CLIENT, "tester")
    response = app.test_client().post(
        SUGGEST, json={"message": "hi"}, headers={"Authorization": f"Bearer {token}"}
    )
    assert error_of(response, 503)["message"] == said
    svc.db.dispose()


def test_identical_concurrent_feedback_is_stored_once_and_every_caller_answered(
    app, client_headers, db
) -> None:  # type: ignore[no-untyped-def]
    body = {"message": "same time?", "suggestions": ["Yes", "No"], "chosen": 0}
    responses = at_once(
        8, lambda _: post_json(app.test_client(), "/v1/feedback", body, client_headers)
    )
    assert sorted(r.status_code for r in responses) == [200] * 7 + [201]
    assert len({r.json["example_id"] for r in responses}) == 1
    assert sorted(r.json["duplicate"] for r in responses) == [False] + [True] * 7
    with db.session() as session:
        stored = session.scalar(
            select(func.count(Example.id)).where(Example.message == "same time?")
        )
    assert stored == 1


def test_identical_concurrent_imports_are_stored_once_and_every_caller_answered(
    app, reviewer_headers, db
) -> None:  # type: ignore[no-untyped-def]
    rows = [{"message": f"batch message {i}", "reply": f"batch reply {i}"} for i in range(20)]
    body = {"examples": rows, "provenance": "human"}
    responses = at_once(
        8, lambda _: post_json(app.test_client(), "/v1/examples", body, reviewer_headers)
    )
    assert [r.status_code for r in responses] == [201] * 8
    assert sum(r.json["added"] for r in responses) == 20
    assert {r.json["added"] + r.json["duplicates"] for r in responses} == {20}
    with db.session() as session:
        stored = session.scalar(
            select(func.count(Example.id)).where(Example.message.like("batch message %"))
        )
    assert stored == 20


def test_a_bad_niche_among_40_clients_costs_no_other_clients_message(
    app, client_headers, db
) -> None:  # type: ignore[no-untyped-def]
    bodies = [{"message": f"at the same moment {i}"} for i in range(40)]
    bodies.insert(17, {"message": "x", "niche": "\ud800"})
    responses = at_once(
        len(bodies), lambda i: post_json(app.test_client(), SUGGEST, bodies[i], client_headers)
    )
    assert [r.status_code for r in responses] == [200] * 17 + [422] + [200] * 23
    assert "niche is not valid Unicode" in responses[17].json["error"]["message"]
    app.extensions["replyguard"].incoming.flush()
    with db.session() as session:
        kept = session.scalar(
            select(func.count(IncomingMessage.id)).where(
                IncomingMessage.message.like("at the same moment %")
            )
        )
    assert kept == 40


@pytest.mark.parametrize("number", [str(2**63), "9" * 30, "9" * 5000])
def test_ids_larger_than_a_database_integer_are_404_not_500(
    app, client, reviewer_headers, number: str
) -> None:  # type: ignore[no-untyped-def]
    from tests.test_dashboard import make_token
    from tests.test_dashboard import sign_in

    error = error_of(client.get(f"/v1/generations/{number}", headers=reviewer_headers), 404)
    assert error["code"] == "not_found"
    token, _ = make_token(app, Role.REVIEWER)
    assert sign_in(client, token).status_code == 303
    for page in (
        f"/dashboard/generations/{number}",
        f"/dashboard/generations/{number}/progress.json",
    ):
        assert client.get(page).status_code == 404


def test_long_bad_values_are_echoed_bounded(client, reviewer_headers) -> None:  # type: ignore[no-untyped-def]
    row = {"message": "m", "reply": "r", "provenance": "x" * 200_000}
    body = {"examples": [row], "provenance": "human"}
    error = error_of(post_json(client, "/v1/examples", body, reviewer_headers), 422)
    assert error["details"]["rows"][0]["error"] == (
        "provenance must be one of human, human_selected, synthetic, not '" + "x" * 40 + "'..."
    )
