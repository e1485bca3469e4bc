"""The product team's API: generations, promotion overrides, rollbacks and the audit log.

Reviewer or admin keys only; a client key gets 403 on every one of these.
"""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from apiflask.fields import String
from flask import current_app
from flask import url_for
from sqlalchemy import select

from core.generations import get_generation
from core.generations import newest_first
from core.schema import AuditEntry
from core.schema import Generation
from safeguards.gate import upgrade_generation
from webapp.auth import STAFF
from webapp.auth import auth
from webapp.auth import current_caller
from webapp.errors import BODY_ERRORS
from webapp.errors import RATE_LIMITED
from webapp.errors import STAFF_ONLY
from webapp.schemas import AuditOut
from webapp.schemas import AuditQuery
from webapp.schemas import GenerationDetailOut
from webapp.schemas import GenerationsOut
from webapp.schemas import GenerationStartedOut
from webapp.schemas import ProductionChangeOut
from webapp.schemas import ReasonIn
from webapp.state import services
from worker.dispatch import queue_generation
from worker.promotion import override
from worker.promotion import rollback

bp = APIBlueprint("generations", __name__, url_prefix="/v1", tag="Generations")


def generation_summary(g: Generation, detail: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": g.id,
        "number": g.number,
        "status": g.status,
        "stage": g.stage,
        "parent_version": g.parent_version,
        "candidate_version": g.candidate_version,
        "verdict": (g.decision or {}).get("verdict"),
        "error": g.error,
        "requested_by": g.requested_by,
        "created_at": g.created_at.isoformat(),
        "finished_at": g.finished_at.isoformat() if g.finished_at else None,
    }
    if detail:
        stages = {
            name: {k: v for k, v in record.items() if k != "data"}
            for name, record in (g.stages or {}).items()
        }
        # Stored evaluations and decisions in the current layout, whatever layout they were
        # written in.
        metrics, decision = upgrade_generation(g.metrics, g.decision)
        body.update(stages=stages, metrics=metrics, decision=decision)
    return body


REASON_EXAMPLE = {"reason": "the drop in distinct replies is the new niche's; checked by hand"}
# Every view here takes a reviewer or admin key and counts against the key's rate limit.
STAFF_ERRORS = {**STAFF_ONLY, **RATE_LIMITED}
# What override and rollback refuse (worker/promotion.py).
PRODUCTION_CHANGE_ERRORS = {
    **BODY_ERRORS,
    **STAFF_ERRORS,
    404: "There is no such model version",
    409: "The version's status does not allow it (the message says which it has)",
}


@bp.post("/generations")
@bp.auth_required(auth, roles=STAFF)
@bp.output(
    GenerationStartedOut,
    status_code=202,
    description="Queued",
    headers={"Location": String(required=True, metadata={"description": "The status URL."})},
)
@bp.doc(
    summary="Start a generation (202 with its id; poll the status URL)",
    responses={
        **STAFF_ERRORS,
        409: "A generation is queued or running already (it is named), or there is no "
        "production model or clean baseline to start from",
        503: "The task queue (Redis) is unreachable",
    },
)
def start() -> tuple[dict[str, Any], int, dict[str, str]]:
    svc = services()
    # A refusal (busy 409, no model 409, queue down 503) is answered by webapp/errors.py.
    generation_id = queue_generation(
        current_app.extensions["celery"], svc.pipeline, current_caller().actor
    )
    location = url_for("generations.show", generation_id=generation_id)
    return {"generation_id": generation_id, "status_url": location}, 202, {"Location": location}


@bp.get("/generations")
@bp.auth_required(auth, roles=STAFF)
@bp.output(GenerationsOut)
@bp.doc(summary="Every generation, newest first", responses=STAFF_ERRORS)
def index() -> dict[str, Any]:
    with services().db.session() as session:
        return {"generations": [generation_summary(g) for g in newest_first(session)]}


@bp.get("/generations/<int:generation_id>")
@bp.auth_required(auth, roles=STAFF)
@bp.output(GenerationDetailOut)
@bp.doc(
    summary="One generation: stage, progress, counts, metrics and the gate's decision",
    responses={**STAFF_ERRORS, 404: "There is no generation with this id"},
)
def show(generation_id: int) -> dict[str, Any]:
    with services().db.session() as session:
        # An unknown id: GenerationNotFound, answered 404 by webapp/errors.py.
        return generation_summary(get_generation(session, generation_id), detail=True)


@bp.post("/models/<version>/promote")
@bp.auth_required(auth, roles=STAFF)
@bp.input(ReasonIn, arg_name="body", example=REASON_EXAMPLE)
@bp.output(ProductionChangeOut)
@bp.doc(
    summary="Override the gate: promote a blocked candidate (a reason is required)",
    responses=PRODUCTION_CHANGE_ERRORS,
)
def promote_version(version: str, body: dict[str, Any]) -> dict[str, Any]:
    return _change_production(override, version, body["reason"])


@bp.post("/models/<version>/rollback")
@bp.auth_required(auth, roles=STAFF)
@bp.input(ReasonIn, arg_name="body", example=REASON_EXAMPLE)
@bp.output(ProductionChangeOut)
@bp.doc(summary="Make an earlier model production again", responses=PRODUCTION_CHANGE_ERRORS)
def rollback_version(version: str, body: dict[str, Any]) -> dict[str, Any]:
    return _change_production(rollback, version, body["reason"])


def _change_production(action: Any, version: str, reason: str) -> dict[str, Any]:
    """Run override or rollback (worker/promotion.py, where their rules are); a refusal
    (404, 409, 422) is answered by webapp/errors.py."""
    svc = services()
    with svc.db.session() as session:
        row = action(session, svc.settings, version, current_caller().actor, reason)
        return {"version": row.version, "status": row.status}


@bp.get("/audit")
@bp.auth_required(auth, roles=STAFF)
@bp.input(AuditQuery, location="query", arg_name="query")
@bp.output(AuditOut)
@bp.doc(summary="The audit log, newest first", responses=STAFF_ERRORS)
def audit_log(query: dict[str, Any]) -> dict[str, Any]:
    with services().db.session() as session:
        rows = session.scalars(
            select(AuditEntry).order_by(AuditEntry.id.desc()).limit(query["limit"])
        )
        return {
            "entries": [
                {
                    "id": e.id,
                    "at": e.at.isoformat(),
                    "actor": e.actor,
                    "action": e.action,
                    "target": e.target,
                    "reason": e.reason,
                    "details": e.details,
                }
                for e in rows
            ]
        }
