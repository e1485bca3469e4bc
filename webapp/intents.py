"""Reviewers' edits to the catalogue of intents through the API (reviewer or admin). The rules
live in models.intent_edits, shared with the dashboard and the command line; a refusal is answered
by webapp/errors.py (404 unknown intent, 409 a name taken or a state that does not fit, 422 a
rule broken)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint

from models.intent_edits import IntentState
from models.intent_edits import Overlay
from models.intent_edits import add_intent
from models.intent_edits import add_reply
from models.intent_edits import disable_intent
from models.intent_edits import enable_intent
from models.intent_edits import load_overlay
from models.intent_edits import rename_intent
from webapp.auth import STAFF
from webapp.auth import auth
from webapp.auth import current_caller
from webapp.errors import BODY_ERRORS
from webapp.errors import RATE_LIMITED
from webapp.errors import STAFF_ONLY
from webapp.schemas import EditedIntentOut
from webapp.schemas import IntentIn
from webapp.schemas import IntentRenameIn
from webapp.schemas import IntentReplyIn
from webapp.schemas import IntentsOut
from webapp.schemas import ReasonIn
from webapp.state import services

bp = APIBlueprint("intents", __name__, url_prefix="/v1/intents", tag="Intents")

UNKNOWN = {404: "No intent has this name (GET /v1/intents lists them)"}
INVALID = (
    "A field is missing, unknown or invalid (details.fields names each), or the edit breaks a "
    "rule of the catalogue (code invalid_intent; the message names each problem)"
)


def intent_dict(state: IntentState) -> dict[str, Any]:
    """One intent as the API, and the dashboard, show it."""
    intent = state.intent
    return {
        "name": intent.name,
        "group": intent.group,
        "tone": intent.tone.value,
        "stance": intent.stance.value if intent.stance else None,
        "source": state.source.value,
        "disabled": state.disabled,
        "shipped_name": state.shipped_name,
        "replies": [
            {"text": reply, "source": state.reply_source(reply).value} for reply in intent.replies
        ],
    }


def overlay_dict(overlay: Overlay) -> dict[str, Any]:
    """Every intent, by group, and the stored edits that no longer apply."""
    return {
        "version": overlay.version,
        "groups": [
            {"group": group, "intents": [intent_dict(s) for s in members]}
            for group, members in overlay.groups().items()
        ],
        "skipped": [
            {"id": s.edit.id, "action": s.edit.action.value, "intent": s.edit.intent, "why": s.why}
            for s in overlay.skipped
        ],
    }


@bp.get("")
@bp.auth_required(auth, roles=STAFF)
@bp.output(IntentsOut)
@bp.doc(
    summary="The catalogue of intents as reviewers made it, by group (reviewer or admin)",
    description="Every intent, disabled ones included, with its tone, stance, replies and "
    "source: shipped in models/catalogue.yaml (catalogue) or added by a reviewer (reviewer).",
    responses={**STAFF_ONLY, **RATE_LIMITED},
)
def list_intents() -> dict[str, Any]:
    with services().db.session() as session:
        return overlay_dict(load_overlay(session))


@bp.post("")
@bp.auth_required(auth, roles=STAFF)
@bp.input(
    IntentIn,
    arg_name="body",
    example={
        "name": "on_it",
        "group": "work",
        "tone": "neutral",
        "replies": ["Handling it now", "On the case"],
        "reason": "support agents answer this all day",
    },
)
@bp.output(EditedIntentOut, status_code=201)
@bp.doc(
    summary="Add an intent (audited)",
    responses={
        **BODY_ERRORS,
        409: "An intent has this name already (code intent_conflict)",
        422: INVALID,
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def add(body: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    with svc.db.session() as session:
        state = add_intent(
            session,
            svc.settings.response_set,
            body["name"],
            body["group"],
            body["tone"],
            body["stance"],
            body["replies"],
            body["reason"],
            current_caller().actor,
        )
        return intent_dict(state)


@bp.post("/<name>/replies")
@bp.auth_required(auth, roles=STAFF)
@bp.input(
    IntentReplyIn,
    arg_name="body",
    example={"reply": "Okey dokey", "reason": "how our users say it"},
)
@bp.output(EditedIntentOut, status_code=201)
@bp.doc(
    summary="Add a reply to an intent (audited)",
    responses={
        **BODY_ERRORS,
        **UNKNOWN,
        409: "The intent is disabled: enable it first (code intent_conflict)",
        422: INVALID,
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def add_one_reply(name: str, body: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    with svc.db.session() as session:
        state = add_reply(
            session,
            svc.settings.response_set,
            name,
            body["reply"],
            body["reason"],
            current_caller().actor,
        )
        return intent_dict(state)


@bp.post("/<name>/rename")
@bp.auth_required(auth, roles=STAFF)
@bp.input(
    IntentRenameIn,
    arg_name="body",
    example={"new_name": "okay", "reason": "the name reviewers search for"},
)
@bp.output(EditedIntentOut)
@bp.doc(
    summary="Rename an intent (audited)",
    responses={
        **BODY_ERRORS,
        **UNKNOWN,
        409: "An intent has the new name already, or it is this one's (code intent_conflict)",
        422: INVALID,
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def rename(name: str, body: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    with svc.db.session() as session:
        state = rename_intent(
            session,
            svc.settings.response_set,
            name,
            body["new_name"],
            body["reason"],
            current_caller().actor,
        )
        return intent_dict(state)


@bp.post("/<name>/disable")
@bp.auth_required(auth, roles=STAFF)
@bp.input(ReasonIn, arg_name="body", example={"reason": "suggested where it reads as rude"})
@bp.output(EditedIntentOut)
@bp.doc(
    summary="Disable an intent: out of the effective catalogue until enabled (audited)",
    responses={
        **BODY_ERRORS,
        **UNKNOWN,
        409: "The intent is disabled already (code intent_conflict)",
        422: "The reason is missing or invalid (details.fields names it), or the intent is "
        "the last 'no' of a group with 'yes' intents (code invalid_intent)",
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def disable(name: str, body: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    with svc.db.session() as session:
        state = disable_intent(
            session, svc.settings.response_set, name, body["reason"], current_caller().actor
        )
        return intent_dict(state)


@bp.post("/<name>/enable")
@bp.auth_required(auth, roles=STAFF)
@bp.input(ReasonIn, arg_name="body", example={"reason": "reworded the replies that read badly"})
@bp.output(EditedIntentOut)
@bp.doc(
    summary="Enable a disabled intent again (audited)",
    responses={
        **BODY_ERRORS,
        **UNKNOWN,
        409: "The intent is not disabled (code intent_conflict)",
        422: "The reason is missing or invalid (details.fields names it), or one of its "
        "replies now breaks a rule: blocked since, or in an intent added since "
        "(code invalid_intent)",
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def enable(name: str, body: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    with svc.db.session() as session:
        state = enable_intent(
            session, svc.settings.response_set, name, body["reason"], current_caller().actor
        )
        return intent_dict(state)
