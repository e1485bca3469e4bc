"""Liveness and readiness probes (no authentication: load balancers call them)."""

from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from webapp.state import services

bp = APIBlueprint("health", __name__, tag="Health")


@bp.get("/healthz")
@bp.doc(summary="The process is alive")
def healthz() -> dict[str, Any]:
    return {"status": "ok"}


@bp.get("/readyz")
@bp.doc(summary="The database answers and a production model is loaded")
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
