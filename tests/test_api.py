"""The JSON API through the Flask test client: happy paths and every kind of bad input."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select

from core.schema import Example
from core.schema import IncomingMessage

SUGGEST = "/v1/suggestions"


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    error: dict[str, Any] = response.json["error"]
    assert error["status"] == status
    assert error["message"]
    assert set(error) == {"status", "code", "message", "details"}
    assert "Traceback" not in response.get_data(as_text=True)
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
    response = client.post(SUGGEST, json={"message": "What is AI?"}, headers=client_headers)
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
        token, _ = create_key(session, "c", Role.CLIENT)
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
    ("body", "fragment"),
    [
        ({"message": "hi", "suggestions": ["a"]}, "exactly one of 'chosen'"),
        (
            {"message": "hi", "suggestions": ["a"], "chosen": 0, "typed": "b"},
            "exactly one of 'chosen'",
        ),
        ({"message": "hi", "suggestions": ["a"], "chosen": 1}, "must index the 1 suggestion(s)"),
        ({"message": "hi", "suggestions": ["a"], "chosen": -1}, "must index"),
        ({"message": "hi", "suggestions": "a", "chosen": 0}, "suggestions: Not a valid list"),
        ({"message": "hi", "suggestions": [1], "chosen": 0}, "Not a valid string"),
        ({"message": "hi", "suggestions": [], "typed": "  "}, "typed is empty"),
        ({"message": "", "suggestions": [], "typed": "x"}, "message is empty"),
        ({"suggestions": [], "typed": "x"}, "message: Missing data"),
        ({"message": "hi", "suggestions": ["a"] * 11, "chosen": 0}, "suggestions"),
    ],
)
def test_bad_feedback(client, client_headers, body: dict[str, Any], fragment: str) -> None:  # type: ignore[no-untyped-def]
    error = error_of(client.post("/v1/feedback", json=body, headers=client_headers), 422)
    assert fragment in error["message"]


def test_bulk_examples_need_a_staff_role(client, client_headers, reviewer_headers) -> None:  # type: ignore[no-untyped-def]
    body = {"examples": [{"message": "m1", "reply": "r1", "niche": "n"}], "provenance": "human"}
    error_of(client.post("/v1/examples", json=body, headers=client_headers), 403)
    ok = client.post("/v1/examples", json=body, headers=reviewer_headers)
    assert ok.status_code == 201
    assert ok.json == {"added": 1, "duplicates": 0, "skipped": []}


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"examples": []}, 422, "'examples' is empty"),
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
    assert error["details"]["rows"] == [{"index": 1, "error": "'message' is empty"}]
    partial = client.post(
        "/v1/examples",
        json={"examples": rows, "provenance": "human", "skip_invalid": True},
        headers=reviewer_headers,
    )
    assert partial.status_code == 201
    assert partial.json["added"] == 1
    assert partial.json["skipped"] == [{"index": 1, "error": "'message' is empty"}]


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
        token, _ = create_key(session, "c", Role.CLIENT)
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
    assert error_of(response, 403)["code"] == "forbidden"


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
