"""The dashboard's Intents pages and Response set page through the Flask test client: the
same rules as the API and the command line (models/intent_edits.py), a reason and the CSRF token
on every form, refusals shown with their status, every edit audited."""

from __future__ import annotations

import re

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select
from werkzeug.test import TestResponse

from core.schema import AuditEntry
from core.schema import IntentEdit
from core.schema import Role
from models.intent_edits import load_overlay
from tests.test_dashboard import csrf_from
from tests.test_dashboard import make_token
from tests.test_dashboard import sign_in
from tests.test_dashboard import text

NEW = {
    "name": "on_it",
    "group": "work",
    "tone": "neutral",
    "stance": "",
    "replies": "Handling it now\nOn the case\n",
    "reason": "support agents answer this all day",
}


@pytest.fixture
def robin(app: APIFlask, client: FlaskClient) -> FlaskClient:
    """The test client, signed in with a reviewer key named Robin."""
    token, _ = make_token(app, Role.REVIEWER, "Robin")
    assert sign_in(client, token).status_code == 303
    return client


def edits(app: APIFlask) -> int:
    with app.extensions["replyguard"].db.session() as session:
        return int(session.scalar(select(func.count()).select_from(IntentEdit)) or 0)


def audited(app: APIFlask, action: str) -> list[AuditEntry]:
    with app.extensions["replyguard"].db.session() as session:
        return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)))


def post(client: FlaskClient, path: str, form: dict[str, str], page: str = "") -> TestResponse:
    token = csrf_from(client, page or path)
    return client.post(path, data={**form, "csrf_token": token})


@pytest.mark.parametrize("path", ["/dashboard/intents", "/dashboard/intents/ok", "/dashboard/bank"])
def test_the_pages_need_sign_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 303
    assert response.location.startswith("/dashboard/sign-in?next=")


def test_the_intents_are_listed_by_group_with_a_form_to_add_one(robin: FlaskClient) -> None:
    page = text(robin.get("/dashboard/intents"))
    assert "268 intents" in page
    assert '<h2 id="group-offers">offers</h2>' in page
    assert 'href="/dashboard/intents/no_thanks"' in page
    assert 'action="/dashboard/intents"' in page and 'name="csrf_token"' in page
    assert 'href="/dashboard/intents" aria-current="page">Intents</a>' in page
    intent = text(robin.get("/dashboard/intents/no_thanks"))
    for action in ("replies", "rename", "disable"):
        assert f'action="/dashboard/intents/no_thanks/{action}"' in intent
    assert robin.get("/dashboard/intents/nope_nope").status_code == 404


def test_add_an_intent(app: APIFlask, robin: FlaskClient) -> None:
    response = post(robin, "/dashboard/intents", NEW)
    assert response.status_code == 303
    assert response.location == "/dashboard/intents/on_it"
    page = text(robin.get("/dashboard/intents/on_it"))
    assert "Intent &#39;on_it&#39; added" in page
    assert "Handling it now" in page and "Added by a reviewer." in page
    [entry] = audited(app, "intents.add")
    assert entry.actor.endswith(":Robin") and entry.reason == NEW["reason"]
    assert 'class="badge source-reviewer"' in text(robin.get("/dashboard/intents"))


@pytest.mark.parametrize(
    ("change", "status", "fragment"),
    [
        ({"replies": "Handling it now\nCall 415 555 0132"}, 422, "personal_data rule"),
        ({"name": "ok"}, 409, "an intent is called &#39;ok&#39; already"),
        ({"tone": "grumpy"}, 422, "&#39;grumpy&#39; is not a tone"),
        ({"reason": "  "}, 400, "reason is empty"),
    ],
)
def test_adding_is_refused_on_the_page_keeping_the_form(
    app: APIFlask, robin: FlaskClient, change: dict[str, str], status: int, fragment: str
) -> None:
    response = post(robin, "/dashboard/intents", NEW | change)
    assert response.status_code == status
    page = text(response)
    assert fragment in page and 'role="alert"' in page
    # What was typed is still there.
    assert 'value="work"' in page
    assert edits(app) == 0 and audited(app, "intents.add") == []


def test_without_the_csrf_token_nothing_is_done(app: APIFlask, robin: FlaskClient) -> None:
    for path, form in [
        ("/dashboard/intents", NEW),
        ("/dashboard/intents/ok/disable", {"reason": "x"}),
        ("/dashboard/intents/ok/rename", {"new_name": "okay", "reason": "x"}),
    ]:
        response = robin.post(path, data=form)
        assert response.status_code == 400
        assert "security token (CSRF)" in text(response)
    assert edits(app) == 0


def test_add_a_reply(app: APIFlask, robin: FlaskClient) -> None:
    form = {"reply": "Okey dokey", "reason": "how our users say it"}
    response = post(robin, "/dashboard/intents/ok/replies", form, "/dashboard/intents/ok")
    assert response.location == "/dashboard/intents/ok"
    assert "Okey dokey <small>(added by a reviewer)</small>" in text(
        robin.get("/dashboard/intents/ok")
    )
    rude = post(
        robin,
        "/dashboard/intents/ok/replies",
        {**form, "reply": "Ok, shit"},
        "/dashboard/intents/ok",
    )
    assert rude.status_code == 422
    assert "sensitive rule" in text(rude) and 'value="Ok, shit"' in text(rude)
    unknown = post(robin, "/dashboard/intents/nope_nope/replies", form, "/dashboard/intents")
    assert unknown.status_code == 404
    assert "no intent called &#39;nope_nope&#39;" in text(unknown)
    assert len(audited(app, "intents.add_reply")) == 1


def test_rename_disable_and_enable(app: APIFlask, robin: FlaskClient) -> None:
    page = "/dashboard/intents/ok"
    renamed = post(
        robin, "/dashboard/intents/ok/rename", {"new_name": "okay_then", "reason": "r"}, page
    )
    assert renamed.location == "/dashboard/intents/okay_then"
    page = "/dashboard/intents/okay_then"
    taken = post(robin, f"{page}/rename", {"new_name": "thanks", "reason": "r"}, page)
    assert taken.status_code == 409
    assert "choose another name" in text(taken)

    no_reason = post(robin, f"{page}/disable", {"reason": ""}, page)
    assert no_reason.status_code == 400
    assert audited(app, "intents.disable") == []
    assert post(robin, f"{page}/disable", {"reason": "rude"}, page).status_code == 303
    disabled = text(robin.get(page))
    assert "Left out of the catalogue" not in disabled and "Enable okay_then" in disabled
    assert "Add a reply" not in disabled
    with app.extensions["replyguard"].db.session() as session:
        state = load_overlay(session).get("okay_then")
        assert state is not None and state.disabled
    assert post(robin, f"{page}/enable", {"reason": "fine now"}, page).status_code == 303
    last_no = post(
        robin,
        "/dashboard/intents/no_thanks/disable",
        {"reason": "r"},
        "/dashboard/intents/no_thanks",
    )
    assert last_no.status_code == 422
    assert "disable the group&#39;s &#39;yes&#39; intents first" in text(last_no)
    for action in ("rename", "disable", "enable"):
        assert [e.actor.endswith(":Robin") for e in audited(app, f"intents.{action}")] == [True]


def test_the_response_set_page_lists_the_served_replies_by_intent(
    app: APIFlask, robin: FlaskClient
) -> None:
    with app.extensions["replyguard"].db.session() as session:
        from models.curation import add_curated

        add_curated(
            session,
            app.extensions["replyguard"].settings.response_set,
            "Let me check and get back to you",
            "general",
            "canned",
            "tester",
        )
    bank = app.extensions["replyguard"].holder.get().trained.bank
    page = text(robin.get("/dashboard/bank"))
    assert f"The {len(bank) + 1} replies the production model <strong>v1</strong>" in page
    assert "<h2>No intent" in page
    rows = re.findall(r'<td class="num">(\d+)</td>\s*<td><span class="badge source-(\w+)">', page)
    assert len(rows) == len(bank) + 1
    assert ("0", "curated") in rows
    assert {source for _, source in rows} == {"mined", "curated"}
