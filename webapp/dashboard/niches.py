"""The niches page: coverage by niche and generation, and examples per niche by provenance.

Coverage is relevance measured on each niche's benchmark examples (``per_niche`` in every
evaluation's details, read through ``safeguards.gate.upgrade_generation`` whatever layout it
was stored in). Niches are listed rarest first by human examples, which is also how the
safeguards pick the tail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.generations import oldest_first
from core.provenance import Provenance
from core.schema import Example
from core.schema import Generation
from safeguards.gate import upgrade_generation
from safeguards.metrics import metric_label
from webapp.dashboard.charts import VERDICT_MARKS

# Shades of the heat map (CSS classes heat-0 .. heat-8): no inline styles, so the page
# keeps a strict Content-Security-Policy.
SHADES = 8


@dataclass
class NicheRow:
    niche: str
    counts: dict[str, int]
    tail: bool = False
    benchmark: int = 0
    # One cell per generation column: (value or None, shade class).
    cells: list[tuple[float | None, str]] = field(default_factory=list)

    @property
    def human(self) -> int:
        return self.counts.get(Provenance.HUMAN.value, 0)


@dataclass(frozen=True)
class Column:
    number: int
    generation_id: int
    # The gate's verdict as a status, as on the overview's charts.
    mark: str


def niches_context(session: Session, metric: str) -> dict[str, Any]:
    """The heat map of one per-niche metric (the first of the choices when ``metric`` is not
    one of them) over generations, and the examples per niche by provenance."""
    rows = _counts(session)
    evaluated: list[tuple[Generation, dict[str, Any], dict[str, Any]]] = []
    for g in oldest_first(session):
        metrics, decision = upgrade_generation(g.metrics, g.decision)
        if metrics.get("candidate", {}).get("details", {}).get("per_niche"):
            evaluated.append((g, metrics["candidate"], decision))
    choices = _metric_choices(evaluated[-1][1] if evaluated else None)
    if metric not in choices:
        metric = choices[0] if choices else ""
    columns = [
        Column(g.number, g.id, VERDICT_MARKS.get(decision.get("verdict", ""), g.status))
        for g, _, decision in evaluated
    ]
    per_generation = [candidate["details"]["per_niche"] for _, candidate, _ in evaluated]
    latest = evaluated[-1][1]["details"] if evaluated else {}
    tail = set(latest.get("tail_niches", []))
    for niches in per_generation:
        for niche in niches:
            rows.setdefault(niche, NicheRow(niche, {}))
    top = max(
        (float(n[metric]) for niches in per_generation for n in niches.values() if metric in n),
        default=0.0,
    )
    for row in rows.values():
        row.tail = row.niche in tail
        if per_generation and row.niche in per_generation[-1]:
            row.benchmark = int(per_generation[-1][row.niche].get("count", 0))
        for niches in per_generation:
            value = niches.get(row.niche, {}).get(metric)
            row.cells.append(_cell(None if value is None else float(value), top))
    ordered = sorted(rows.values(), key=lambda r: (r.human, r.niche))
    return {
        "rows": ordered,
        "columns": columns,
        "metric": metric,
        "meaning": describe(metric) if metric else "",
        "metrics": choices,
        "top": top,
        "shades": [f"heat-{i}" for i in range(SHADES + 1)],
        "provenances": [p.value for p in Provenance],
    }


def _counts(session: Session) -> dict[str, NicheRow]:
    rows: dict[str, NicheRow] = {}
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    query = select(Example.niche, Example.provenance, func.count()).group_by(
        Example.niche, Example.provenance
    )
    for niche, provenance, count in session.execute(query):
        counts[niche][provenance] = int(count)
    for niche, by_provenance in counts.items():
        rows[niche] = NicheRow(niche, by_provenance)
    return rows


def _metric_choices(candidate: dict[str, Any] | None) -> list[str]:
    """The per-niche metrics of the latest candidate: the gate's primary first, then accuracy
    at the primary's cut-off (the app shows three suggestions, so accuracy@3 on the demo)."""
    if candidate is None:
        return []
    names: list[str] = []
    for niche in candidate["details"]["per_niche"].values():
        names = [k for k in niche if k != "count"]
        break
    primary = str(candidate.get("primary", ""))
    preferred = [primary, f"accuracy@{primary.partition('@')[2] or 3}"]
    return sorted(names, key=lambda n: (preferred.index(n) if n in preferred else 2, n))


def describe(metric: str) -> str:
    """What a per-niche metric means: its label in the registry (safeguards.metrics), to
    follow the name in a sentence."""
    label = metric_label(metric)
    return label[:1].lower() + label[1:]


def _cell(value: float | None, top: float) -> tuple[float | None, str]:
    if value is None:
        return None, "heat-none"
    shade = round(SHADES * value / top) if top > 0 else 0
    return value, f"heat-{shade}"
