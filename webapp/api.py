"""The JSON API that app clients and the product team call (/v1)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import select

from core.ingest import DEFAULT_NICHE
from core.ingest import ExampleIn
from core.ingest import add_examples
from core.ingest import validate_rows
from core.provenance import Provenance
from core.schema import Example
from core.text import pair_hash
from models.registry import find_version
from models.registry import versions
from webapp import metrics
from webapp.auth import STAFF
from webapp.auth import auth
from webapp.auth import current_caller
from webapp.errors import BODY_ERRORS
from webapp.errors import RATE_LIMITED
from webapp.errors import STAFF_ONLY
from webapp.errors import ApiError
from webapp.limits import feedback_limit
from webapp.limits import imports_limit
from webapp.schemas import ExamplesIn
from webapp.schemas import FeedbackIn
from webapp.schemas import FeedbackOut
from webapp.schemas import ImportOut
from webapp.schemas import ModelsOut
from webapp.schemas import SuggestIn
from webapp.schemas import SuggestOut
from webapp.state import services

bp = APIBlueprint("api", __name__, url_prefix="/v1", tag="API")


@bp.post("/suggestions")
@bp.auth_required(auth)
@bp.input(SuggestIn, arg_name="body", example={"message": "are we still on for lunch?", "k": 3})
@bp.output(SuggestOut)
@bp.doc(
    summary="Suggest short replies to a message",
    responses={
        **BODY_ERRORS,
        **RATE_LIMITED,
        503: "No production model is served (none yet, or it was refused): the message says why",
    },
)
def suggest(body: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    # No model served: NoModelError, answered 503 no_model by webapp/errors.py.
    loaded = svc.holder.get()
    k = body["k"] or svc.settings.default_k
    suggestions = svc.batcher.suggest(loaded.model, body["message"], k, body["niche"])
    if svc.settings.record_incoming:
        svc.incoming.record(body["message"], body["niche"])
    triggering = loaded.model.triggering
    triggered = triggering.answers(suggestions)
    reason = triggering.silence(suggestions)
    if reason is not None and suggestions:
        # Not confident: only an API client can ask for the candidates anyway.
        reason += '; send "force": true to get them anyway'
    # Every suggestion shown reaches the threshold; "force" shows every candidate.
    shown = suggestions if body["force"] else triggering.shown(suggestions)
    metrics.SUGGESTIONS.labels("served" if triggered else "abstained").inc()
    return {
        "model_version": loaded.version,
        "triggered": triggered,
        "threshold": triggering.threshold,
        "reason": reason,
        "suggestions": [{"reply_id": s.reply_id, "text": s.text, "score": s.score} for s in shown],
    }


@bp.post("/feedback")
@feedback_limit
@bp.auth_required(auth)
@bp.input(
    FeedbackIn,
    arg_name="body",
    example={
        "message": "are we still on for lunch?",
        "suggestions": ["Yes", "Sure", "Sounds good"],
        "chosen": 1,
    },
)
@bp.output(FeedbackOut, status_code=201)
@bp.doc(
    summary="Report which suggestion the user chose, or what they typed instead",
    responses={
        200: {
            "description": "The same message and reply were stored before: not stored again",
            "content": {"application/json": {"schema": FeedbackOut}},
        },
        **BODY_ERRORS,
        422: "A field is missing, unknown or invalid (details.fields names each), not exactly "
        "one of chosen and typed, chosen not an index of suggestions, or no such model_version",
        **RATE_LIMITED,
    },
)
def feedback(body: dict[str, Any]) -> tuple[dict[str, Any], int]:
    chosen, typed, shown = body["chosen"], body["typed"], body["suggestions"]
    if chosen is not None:  # FeedbackIn checked that exactly one is given, and the index
        reply, provenance = shown[chosen], Provenance.HUMAN_SELECTED
    else:
        reply, provenance = typed, Provenance.HUMAN
    example = ExampleIn(
        message=body["message"],
        reply=reply,
        niche=body["niche"] or DEFAULT_NICHE,
        provenance=provenance,
        # All of one key's feedback is one source: it alone never makes a reply "written by
        # many" (models.response_set).
        conversation=f"key:{current_caller().key_id}",
    )
    version = body["model_version"] if provenance is Provenance.HUMAN_SELECTED else None
    with services().db.session() as session:
        named = body["model_version"]
        if named is not None and find_version(session, named) is None:
            # A field of the body, checked as the schema checks the others (422 naming it).
            problem = f"there is no model version {named!r}; GET /v1/models lists them"
            raise ApiError(
                422,
                f"invalid input: model_version: {problem}",
                details={"fields": {"model_version": [problem]}},
            )
        added, _ = add_examples(session, [example], source="api:feedback", model_version=version)
        if added:
            row = added[0]
        else:
            digest = pair_hash(example.message, example.reply)
            row = session.scalars(select(Example).where(Example.content_hash == digest)).one()
        result = {"example_id": row.id, "provenance": row.provenance, "duplicate": not added}
    kind = "chosen" if chosen is not None else "typed"
    metrics.FEEDBACK.labels(kind).inc()
    if not added:
        metrics.FEEDBACK_DUPLICATES.labels(kind).inc()
    return result, 201 if added else 200


@bp.post("/examples")
@imports_limit
@bp.auth_required(auth, roles=STAFF)
@bp.input(
    ExamplesIn,
    arg_name="body",
    example={
        "examples": [
            {"message": "are we still on for lunch?", "reply": "Yes, see you at noon"},
            {"message": "can you call me?", "reply": "In ten minutes", "niche": "work"},
        ],
        "provenance": "human",
    },
)
@bp.output(ImportOut, status_code=201)
@bp.doc(
    summary="Import examples in bulk (reviewer or admin)",
    responses={
        **BODY_ERRORS,
        413: "The body is larger than REPLYGUARD_MAX_BODY_BYTES, or it has more examples than "
        "REPLYGUARD_MAX_EXAMPLES_PER_REQUEST: split the batch",
        422: "A field is missing, unknown or invalid (details.fields names each), or examples "
        "are invalid (details.rows: each one's index and error; nothing was imported)",
        **STAFF_ONLY,
        **RATE_LIMITED,
    },
)
def import_examples(body: dict[str, Any]) -> dict[str, Any]:
    svc = services()
    rows = body["examples"]
    default = Provenance(body["provenance"]) if body["provenance"] else None
    numbered = [(i, {k: v for k, v in row.items() if v is not None}) for i, row in enumerate(rows)]
    # Invalid rows (ImportFailed; NothingToImport with skip_invalid when none is valid) are
    # answered 422 with each row by webapp/errors.py.
    valid, skipped = validate_rows(numbered, default, body["skip_invalid"])
    caller = current_caller()
    with svc.db.session() as session:
        added, duplicates = add_examples(session, valid, source=f"api:{caller.actor}")
    return {
        "added": len(added),
        "duplicates": duplicates,
        "skipped": [{"index": e.line, "error": e.message} for e in skipped],
    }


@bp.get("/models")
@bp.auth_required(auth)
@bp.output(ModelsOut)
@bp.doc(summary="Model versions and which one is production", responses=RATE_LIMITED)
def list_models() -> dict[str, Any]:
    svc = services()
    with svc.db.session() as session:
        rows = versions(session)
        prod = next((r.version for r in rows if r.status == "production"), None)
        models = [
            {
                "version": r.version,
                "generation": r.generation,
                "parent": r.parent,
                "status": r.status,
                "created_at": r.created_at.isoformat(),
                "promoted_at": r.promoted_at.isoformat() if r.promoted_at else None,
            }
            for r in rows
        ]
    current = svc.holder.current
    return {"production": prod, "serving": current.version if current else None, "models": models}
