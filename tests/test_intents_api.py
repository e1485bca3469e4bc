"""Reviewers' edits to the intents through the API (/v1/intents), and what reviewers read:
GET /v1/bank lists the served response set by intent (models/intent_edits.py, models/served.py)."""

from __future__ import annotations

from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import select

from core.schema import AuditEntry
from models.catalogue import load_catalogue

Headers = dict[str, str]
NEW = {
    "name": "on_it",
    "group": "work",
    "tone": "neutral",
    "replies": ["Handling it now", "On the case"],
    "reason": "support agents answer this all day",
}


def audit(app: APIFlask, action: str) -> list[AuditEntry]:
    with app.extensions["replyguard"].db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def intents(client: FlaskClient, headers: Headers) -> dict[str, dict[str, Any]]:
    answer = client.get("/v1/intents", headers=headers)
    assert answer.status_code == 200
    return {i["name"]: i for g in answer.get_json()["groups"] for i in g["intents"]}


def error(answer: Any) -> dict[str, Any]:
    found: dict[str, Any] = answer.get_json()["error"]
    return found


def test_the_catalogue_is_listed_by_group_for_staff_only(
    client: FlaskClient, reviewer_headers: Headers, client_headers: Headers
) -> None:
    answer = client.get("/v1/intents", headers=reviewer_headers).get_json()
    catalogue = load_catalogue()
    assert [g["group"] for g in answer["groups"]] == list(catalogue.groups())
    listed = {i["name"]: i for g in answer["groups"] for i in g["intents"]}
    assert len(listed) == len(catalogue) == 268
    assert listed["no_thanks"] == {
        "name": "no_thanks",
        "group": "offers",
        "tone": "negative",
        "stance": "no",
        "source": "catalogue",
        "disabled": False,
        "shipped_name": "no_thanks",
        "replies": [{"text": r, "source": "catalogue"} for r in catalogue["no_thanks"].replies],
    }
    assert answer["skipped"] == []
    assert client.get("/v1/intents", headers=client_headers).status_code == 403
    assert client.get("/v1/intents").status_code == 401


def test_add_an_intent(app: APIFlask, client: FlaskClient, reviewer_headers: Headers) -> None:
    answer = client.post("/v1/intents", json=NEW, headers=reviewer_headers)
    assert answer.status_code == 201, answer.get_json()
    assert answer.get_json()["source"] == "reviewer"
    listed = intents(client, reviewer_headers)["on_it"]
    assert (listed["group"], listed["stance"], listed["shipped_name"]) == ("work", None, None)
    assert [r["source"] for r in listed["replies"]] == ["reviewer", "reviewer"]
    [entry] = audit(app, "intents.add")
    assert entry.actor.startswith("key:") and entry.target == "on_it"
    assert entry.reason == NEW["reason"]


@pytest.mark.parametrize(
    ("change", "status", "code", "fragment"),
    [
        (
            {"replies": ["Handling it now", "Call 415 555 0132"]},
            422,
            "invalid_intent",
            "breaks the response set's personal_data rule",
        ),
        ({"name": "ok"}, 409, "intent_conflict", "an intent is called 'ok' already"),
        ({"name": "On It"}, 422, "invalid_input", "name: write it in snake_case"),
        ({"replies": ["Handling it now"]}, 422, "invalid_input", "replies:"),
        ({"tone": "grumpy"}, 422, "invalid_input", "tone:"),
        ({"reason": None}, 422, "invalid_input", "reason:"),
    ],
)
def test_adding_an_intent_is_refused_with_what_to_do(
    app: APIFlask,
    client: FlaskClient,
    reviewer_headers: Headers,
    change: dict[str, Any],
    status: int,
    code: str,
    fragment: str,
) -> None:
    body = {k: v for k, v in (NEW | change).items() if v is not None}
    answer = client.post("/v1/intents", json=body, headers=reviewer_headers)
    assert answer.status_code == status
    assert error(answer)["code"] == code
    assert fragment in error(answer)["message"]
    assert audit(app, "intents.add") == []
    assert "on_it" not in intents(client, reviewer_headers)


def test_add_a_reply(app: APIFlask, client: FlaskClient, reviewer_headers: Headers) -> None:
    body = {"reply": "Okey dokey", "reason": "how our users say it"}
    answer = client.post("/v1/intents/ok/replies", json=body, headers=reviewer_headers)
    assert answer.status_code == 201
    assert answer.get_json()["replies"][-1] == {"text": "Okey dokey", "source": "reviewer"}
    assert intents(client, reviewer_headers)["ok"]["replies"][-1]["text"] == "Okey dokey"
    assert audit(app, "intents.add_reply")[0].details["replies"] == ["Okey dokey"]

    unknown = client.post("/v1/intents/nope_nope/replies", json=body, headers=reviewer_headers)
    assert (unknown.status_code, error(unknown)["code"]) == (404, "unknown_intent")
    assert "no intent is called 'nope_nope'" in error(unknown)["message"]
    rude = client.post(
        "/v1/intents/ok/replies", json={**body, "reply": "Ok, shit"}, headers=reviewer_headers
    )
    assert (rude.status_code, error(rude)["code"]) == (422, "invalid_intent")
    assert "sensitive rule" in error(rude)["message"]
    assert len(audit(app, "intents.add_reply")) == 1


def test_rename(app: APIFlask, client: FlaskClient, reviewer_headers: Headers) -> None:
    body = {"new_name": "okay_then", "reason": "what reviewers search for"}
    answer = client.post("/v1/intents/ok/rename", json=body, headers=reviewer_headers)
    assert answer.status_code == 200
    assert (answer.get_json()["name"], answer.get_json()["shipped_name"]) == ("okay_then", "ok")
    listed = intents(client, reviewer_headers)
    assert "ok" not in listed and listed["okay_then"]["source"] == "catalogue"
    taken = client.post(
        "/v1/intents/okay_then/rename",
        json={**body, "new_name": "thanks"},
        headers=reviewer_headers,
    )
    assert (taken.status_code, error(taken)["code"]) == (409, "intent_conflict")
    assert "choose another name" in error(taken)["message"]
    [entry] = audit(app, "intents.rename")
    assert (entry.target, entry.details["from"]) == ("okay_then", "ok")


def test_disable_and_enable(app: APIFlask, client: FlaskClient, reviewer_headers: Headers) -> None:
    reason = {"reason": "suggested where it reads as rude"}
    answer = client.post("/v1/intents/whatever_x/disable", json=reason, headers=reviewer_headers)
    assert (answer.status_code, error(answer)["code"]) == (404, "unknown_intent")
    missing = client.post("/v1/intents/ok/disable", json={}, headers=reviewer_headers)
    assert missing.status_code == 422
    assert "reason" in error(missing)["details"]["fields"]
    assert audit(app, "intents.disable") == []

    assert client.post("/v1/intents/ok/disable", json=reason, headers=reviewer_headers).json[
        "disabled"
    ]
    assert intents(client, reviewer_headers)["ok"]["disabled"] is True
    again = client.post("/v1/intents/ok/disable", json=reason, headers=reviewer_headers)
    assert (again.status_code, error(again)["code"]) == (409, "intent_conflict")
    last_no = client.post("/v1/intents/no_thanks/disable", json=reason, headers=reviewer_headers)
    assert (last_no.status_code, error(last_no)["code"]) == (422, "invalid_intent")
    enabled = client.post("/v1/intents/ok/enable", json=reason, headers=reviewer_headers)
    assert enabled.status_code == 200 and enabled.get_json()["disabled"] is False
    assert intents(client, reviewer_headers)["ok"]["disabled"] is False
    assert len(audit(app, "intents.disable")) == len(audit(app, "intents.enable")) == 1


def test_client_keys_cannot_edit(client: FlaskClient, client_headers: Headers) -> None:
    answer = client.post("/v1/intents", json=NEW, headers=client_headers)
    assert answer.status_code == 403
    disable = client.post("/v1/intents/ok/disable", json={"reason": "x"}, headers=client_headers)
    assert disable.status_code == 403


# --- GET /v1/bank: the served response set by intent --------------------------------------


def test_the_bank_lists_the_served_set_keeping_curated_and_blocks(
    app: APIFlask, client: FlaskClient, reviewer_headers: Headers
) -> None:
    curated = {"text": "Let me check and get back to you", "reason": "canned"}
    assert (
        client.post("/v1/bank/curated", json=curated, headers=reviewer_headers).status_code == 201
    )
    trained = app.extensions["replyguard"].holder.get().trained.bank
    blocked = trained.texts[0]
    block = {"value": blocked, "reason": "reads badly"}
    assert client.post("/v1/bank/blocks", json=block, headers=reviewer_headers).status_code == 201

    answer = client.get("/v1/bank", headers=reviewer_headers).get_json()
    assert set(answer) == {"curated", "blocks", "model", "intents"}
    assert [c["text"] for c in answer["curated"]] == [curated["text"]]
    assert [b["value"] for b in answer["blocks"]] == [blocked]
    assert answer["model"] == "v1"
    # The demo model was trained before intents: one list, no intent, every reply mined.
    [only] = answer["intents"]
    assert only["intent"] is None
    replies = {r["text"]: r for r in only["replies"]}
    assert len(replies) == len(trained) + 1
    assert replies[curated["text"]]["source"] == "curated"
    assert replies[curated["text"]]["support"] == 0
    assert replies[blocked]["blocked"] is True
    mined = [r for r in only["replies"] if r["text"] != curated["text"]]
    assert {r["source"] for r in mined} == {"mined"}
    assert [r["support"] for r in mined] == sorted((r["support"] for r in mined), reverse=True)
    assert {r["text"]: r["support"] for r in mined} == {
        t: int(c) for t, c in zip(trained.texts, trained.counts, strict=True)
    }


def test_the_bank_lists_by_intent_when_the_model_has_intents(
    app: APIFlask, client: FlaskClient, reviewer_headers: Headers
) -> None:
    # What the `intents` branch's models carry: an intent, tone and source per reply.
    bank = app.extensions["replyguard"].holder.get().trained.bank
    first, second, third = bank.texts[:3]
    bank.intents = ["thanks", "thanks", None, *([None] * (len(bank) - 3))]
    bank.tones = ["positive", "positive", None, *([None] * (len(bank) - 3))]
    bank.sources = ["catalogue", "mined", "mined", *([None] * (len(bank) - 3))]

    listing = client.get("/v1/bank", headers=reviewer_headers).get_json()["intents"]
    assert [i["intent"] for i in listing] == ["thanks", None]
    thanks = listing[0]
    assert (thanks["group"], thanks["tone"]) == ("thanks", "positive")
    assert {r["text"]: r["source"] for r in thanks["replies"]} == {
        first: "catalogue",
        second: "mined",
    }
    assert thanks["support"] == sum(int(c) for c in bank.counts[:2])
    assert third in [r["text"] for r in listing[1]["replies"]]


def test_the_bank_without_a_model_lists_no_intents(tmp_path: Any, encoder: Any) -> None:
    from core.keys import create_key
    from core.schema import Role
    from webapp import create_app

    app = create_app({"data_dir": str(tmp_path / "fresh")}, encoder=encoder)
    with app.extensions["replyguard"].db.session() as session:
        token, _ = create_key(session, "r", Role.REVIEWER, "tester")
    answer = app.test_client().get("/v1/bank", headers={"Authorization": f"Bearer {token}"})
    assert answer.get_json() == {"curated": [], "blocks": [], "model": None, "intents": []}
    app.extensions["replyguard"].db.dispose()


def test_a_disabled_intent_is_not_suggested_from_the_next_check(
    app: APIFlask, client: FlaskClient, reviewer_headers: Headers
) -> None:
    # A bank that records intents (the `intents` branch's models): two replies of 'thanks'.
    holder = app.extensions["replyguard"].holder
    bank = holder.get().trained.bank
    bank.intents = ["thanks", "thanks", *([None] * (len(bank) - 2))]
    reason = {"reason": "reads as sarcastic here"}
    answer = client.post("/v1/intents/thanks/disable", json=reason, headers=reviewer_headers)
    assert answer.status_code == 200
    # The app checks every request (production_check_seconds=0), as web processes do every
    # few seconds: the edit's revision changed, the model is rebuilt without them.
    assert {0, 1} <= holder.get().model.blocked_ids
    listing = client.get("/v1/bank", headers=reviewer_headers).get_json()["intents"]
    assert (listing[0]["intent"], listing[0]["disabled"]) == ("thanks", True)
    client.post("/v1/intents/thanks/enable", json=reason, headers=reviewer_headers)
    assert not {0, 1} & holder.get().model.blocked_ids
