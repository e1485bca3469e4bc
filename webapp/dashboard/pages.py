"""The pages that show: overview, niches, a generation, models, the audit log."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask import render_template
from flask import request
from sqlalchemy import select

from core.generations import GenerationNotFound
from core.generations import active_generation
from core.generations import generations_of
from core.generations import get_generation
from core.schema import AuditEntry
from core.schema import ModelStatus
from models.registry import versions
from webapp.dashboard.blueprint import bp
from webapp.dashboard.detail import generation_context
from webapp.dashboard.guard import error_page
from webapp.dashboard.niches import niches_context
from webapp.dashboard.overview import overview_context
from webapp.generations import generation_summary
from webapp.state import services

AUDIT_LIMIT = 200


@bp.get("/")
def overview() -> str:
    found = services()
    with found.db.session() as session:
        return render_template(
            "dashboard/overview.html",
            **overview_context(session, found.settings, found.holder),
        )


@bp.get("/niches")
def niches() -> str:
    metric = request.args.get("metric", "")
    with services().db.session() as session:
        return render_template("dashboard/niches.html", **niches_context(session, metric))


@bp.get("/generations/<int:generation_id>")
def generation(generation_id: int) -> Any:
    with services().db.session() as session:
        try:
            row = get_generation(session, generation_id)
        except GenerationNotFound:
            return _no_generation(generation_id)
        return render_template(
            "dashboard/generation.html", **generation_context(session, services().settings, row)
        )


@bp.get("/generations/<int:generation_id>/progress.json")
def progress(generation_id: int) -> Any:
    """What the generation page polls while the generation runs (the /v1 endpoint wants an
    API key header, which a page signed in with a cookie does not send)."""
    with services().db.session() as session:
        try:
            row = get_generation(session, generation_id)
        except GenerationNotFound as exc:
            return jsonify(error=str(exc)), 404
        return jsonify(generation_summary(row, detail=True))


@bp.get("/models")
def models() -> str:
    with services().db.session() as session:
        rows = list(reversed(versions(session)))
        made_by = generations_of(session, [r.version for r in rows])
        active = active_generation(session)
        has_production = any(r.status == ModelStatus.PRODUCTION.value for r in rows)
        return render_template(
            "dashboard/models.html",
            versions=rows,
            made_by=made_by,
            active=active,
            has_production=has_production,
        )


@bp.get("/audit")
def audit() -> str:
    with services().db.session() as session:
        entries = list(
            session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(AUDIT_LIMIT))
        )
        return render_template("dashboard/audit.html", entries=entries, limit=AUDIT_LIMIT)


def _no_generation(generation_id: int) -> tuple[str, int]:
    return error_page(
        404,
        "No such generation",
        f"There is no generation with id {generation_id}. The overview lists every generation.",
    )
