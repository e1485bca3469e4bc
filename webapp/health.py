"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from webapp.limits import limiter
from webapp.schemas import HealthOut
from webapp.schemas import ReadyOut
from webapp.state import services

bp = APIBlueprint("health", __name__, tag="Health")
# Probes are never rate limited (webapp/limits.py).
limiter.exempt(bp)


@bp.get("/healthz")
@bp.output(HealthOut)
@bp.doc(summary="The process is alive")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


NOT_READY: dict[int, Any] = {
    503: {
        "description": "Not ready: checks says what is missing",
        "content": {"application/json": {"schema": ReadyOut}},
    }
}


@bp.get("/readyz")
@bp.output(ReadyOut, description="Ready")
@bp.doc(summary="The database answers and a production model is loaded", responses=NOT_READY)
def readyz() -> tuple[dict[str, Any], int]:
    svc = services()
    checks: dict[str, Any] = {}
    try:
        with svc.db.session() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except SQLAlchemyError:
        checks["database"] = "unreachable"
    current = svc.holder.current
    checks["model"] = current.version if current else (svc.holder.public_error or "none loaded")
    ready = checks["database"] == "ok" and current is not None
    return {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
