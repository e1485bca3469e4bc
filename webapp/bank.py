"""The response set through the API (reviewer or admin): what the production model serves,
by intent, and the product team's curated replies and blocks. The rules live in
models.curation, the listing in models.served, both shared with the CLI and the dashboard."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import select

from core.schema import CuratedReply
from core.schema import ReplyBlock
from models.curation import add_block
from models.curation import add_curated
from models.curation import lift_block
from models.served import ServedIntent
from models.served import served_listing
from webapp.auth import STAFF
from webapp.auth import auth
from webapp.auth import current_caller
from webapp.errors import BODY_ERRORS
from webapp.errors import RATE_LIMITED
from webapp.errors import STAFF_ONLY
from webapp.schemas import BankListOut
from webapp.schemas import BankOut
from webapp.schemas import BlockIn
from webapp.schemas import CuratedIn
from webapp.schemas import ReasonIn
from webapp.state import services

bp = APIBlueprint("bank", __name__, url_prefix="/v1/bank", tag="Response set")


@bp.get("")
@bp.auth_required(auth, roles=STAFF)
@bp.output(BankListOut)
@bp.doc(
    summary="The served response set by intent, curated replies and blocks (reviewer or admin)",
    description="intents: the production model's replies as this web process serves them, "
    "by intent (null: no intent), each with its support and source (catalogue, mined, "
    "curated) and whether a block stops it; empty when no model is served yet.",
    responses={**STAFF_ONLY, **RATE_LIMITED},
)
def list_curation() -> dict[str, Any]:
    svc = services()
    loaded = svc.holder.find()
    with svc.db.session() as session:
        curated = session.scalars(select(CuratedReply).order_by(CuratedReply.id)).all()
        blocks = session.scalars(select(ReplyBlock).order_by(ReplyBlock.id)).all()
        listing: tuple[ServedIntent, ...] = ()
        if loaded is not None:
            # The bank as trained, with the curation as stored: what `replyguard bank list`
            # lists from the artifact too (the served bank is this plus the curated replies).
            listing = served_listing(session, loaded.trained.bank)
        return {
            "curated": curated,
            "blocks": blocks,
            "model": loaded.version if loaded else None,
            "intents": [served_dict(i) for i in listing],
        }


def served_dict(intent: ServedIntent) -> dict[str, Any]:
    """One intent of the served response set, as the API and the dashboard show it."""
    return {
        "intent": intent.intent,
        "group": intent.group,
        "tone": intent.tone,
        "support": intent.support,
        "disabled": intent.disabled,
        "replies": [
            {
                "text": r.text,
                "support": r.support,
                "source": r.source.value,
                "niches": list(r.niches),
                "blocked": r.blocked,
            }
            for r in intent.replies
        ],
    }


@bp.post("/curated")
@bp.auth_required(auth, roles=STAFF)
@bp.input(
    CuratedIn,
    arg_name="body",
    example={"text": "On my way", "reason": "a common answer the model never learned"},
)
@bp.output(BankOut, status_code=201)
@bp.doc(
    summary="Add a canned reply: served by every web process within seconds",
    responses={
        **BODY_ERRORS,
        422: "A field is missing, unknown or invalid (details.fields names each), or the reply "
        "breaks a rule of the response set or is curated already (code refused_reply)",
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def curate(body: dict[str, Any]) -> dict[str, Any]:
    # A refused reply (RefusedReply, 422) is answered by webapp/errors.py.
    svc = services()
    with svc.db.session() as session:
        row = add_curated(
            session,
            svc.settings.response_set,
            body["text"],
            body["niche"],
            body["reason"],
            current_caller().actor,
        )
        return {"curated": [row], "blocks": []}


@bp.post("/blocks")
@bp.auth_required(auth, roles=STAFF)
@bp.input(
    BlockIn,
    arg_name="body",
    example={"kind": "pattern", "value": "\\bcall me\\b", "reason": "no phone calls"},
)
@bp.output(BankOut, status_code=201)
@bp.doc(
    summary="Block a reply or a pattern: never suggested again, from within seconds",
    responses={
        **BODY_ERRORS,
        422: "A field is missing, unknown or invalid (details.fields names each), or the "
        "pattern is not one RE2 accepts (code invalid_block; the message says why, and what "
        "to write instead of a backreference or lookaround)",
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def block(body: dict[str, Any]) -> dict[str, Any]:
    # An unusable block (InvalidBlock, 422) is answered by webapp/errors.py.
    with services().db.session() as session:
        row = add_block(
            session, body["kind"], body["value"], body["reason"], current_caller().actor
        )
        return {"curated": [], "blocks": [row]}


@bp.post("/blocks/<int:block_id>/lift")
@bp.auth_required(auth, roles=STAFF)
@bp.input(ReasonIn, arg_name="body", example={"reason": "the pattern caught ordinary replies"})
@bp.output(BankOut)
@bp.doc(
    summary="Lift a block (audited): served again by every web process within seconds, and "
    "by every later model",
    responses={
        **BODY_ERRORS,
        404: "There is no block with this id",
        409: "The block is lifted already (the message says when and by whom)",
        422: "The reason is missing or invalid (details.fields names it)",
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def lift(block_id: int, body: dict[str, Any]) -> dict[str, Any]:
    # Unknown id 404, lifted already 409, via webapp/errors.py's ActionRefused handler.
    with services().db.session() as session:
        row = lift_block(session, block_id, body["reason"], current_caller().actor)
        return {"curated": [], "blocks": [row]}
