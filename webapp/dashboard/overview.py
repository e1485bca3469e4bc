"""What the overview page shows: production, the last decision, the trend, the generations."""

from __future__ import annotations

from typing import Any

from flask import url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.generations import holds_lock
from core.schema import Generation
from core.schema import ModelVersion
from models.registry import production
from safeguards.gate import upgrade_decision
from webapp.dashboard.charts import build_charts
from webapp.dashboard.charts import charted


def overview_context(session: Session) -> dict[str, Any]:
    generations = list(session.scalars(select(Generation).order_by(Generation.number)))
    current = production(session)
    points = charted(generations, lambda g: url_for("dashboard.generation", generation_id=g.id))
    return {
        "production": _production(session, current),
        "last_decision": _last_decision(generations),
        "active": next((g for g in generations if holds_lock(g)), None),
        "generations": list(reversed(generations)),
        "charts": build_charts(points),
        "has_trend": len(points) > 1,
    }


def _production(session: Session, row: ModelVersion | None) -> dict[str, Any] | None:
    if row is None:
        return None
    made_by = session.scalars(
        select(Generation).where(Generation.candidate_version == row.version)
    ).one_or_none()
    return {
        "version": row.version,
        "generation": row.generation,
        "generation_id": made_by.id if made_by else None,
        "created_at": row.created_at,
        "promoted_at": row.promoted_at,
    }


def _last_decision(generations: list[Generation]) -> Generation | None:
    """The newest generation the gate decided on (generation 0 is not gated)."""
    decided = [
        g for g in generations if g.number > 0 and upgrade_decision(g.decision or {}).get("metrics")
    ]
    return decided[-1] if decided else None
