"""The niches page: coverage by niche and generation, and examples per niche by provenance.

Coverage is relevance measured on each niche's benchmark examples (``per_niche`` in every
evaluation's details). Niches are listed rarest first by human examples, which is also how
the safeguards pick the tail.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.provenance import Provenance
from core.schema import Example
from core.schema import Generation
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


def niches_context(session: Session, figure: str) -> dict[str, Any]:
    rows = _counts(session)
    generations = [
        g
        for g in session.scalars(select(Generation).order_by(Generation.number))
        if (g.metrics or {}).get("candidate", {}).get("details", {}).get("per_niche")
    ]
    figures = _figure_choices(generations)
    if figure not in figures:
        figure = figures[0] if figures else ""
    columns = [
        Column(g.number, g.id, VERDICT_MARKS.get((g.decision or {}).get("verdict", ""), g.status))
        for g in generations
    ]
    per_generation = [g.metrics["candidate"]["details"]["per_niche"] for g in generations]
    latest = generations[-1].metrics["candidate"]["details"] if generations else {}
    tail = set(latest.get("tail_niches", []))
    for niches in per_generation:
        for niche in niches:
            rows.setdefault(niche, NicheRow(niche, {}))
    top = max(
        (float(n[figure]) for niches in per_generation for n in niches.values() if figure in n),
        default=0.0,
    )
    for row in rows.values():
        row.tail = row.niche in tail
        if per_generation and row.niche in per_generation[-1]:
            row.benchmark = int(per_generation[-1][row.niche].get("count", 0))
        for niches in per_generation:
            value = niches.get(row.niche, {}).get(figure)
            row.cells.append(_cell(None if value is None else float(value), top))
    ordered = sorted(rows.values(), key=lambda r: (r.human, r.niche))
    return {
        "rows": ordered,
        "columns": columns,
        "figure": figure,
        "meaning": describe(figure) if figure else "",
        "figures": figures,
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


def _figure_choices(generations: list[Generation]) -> list[str]:
    """The per-niche figures: the gate's primary first, else recall at the primary's depth
    (the app shows three suggestions, so recall@3 on the demo)."""
    if not generations:
        return []
    candidate = generations[-1].metrics["candidate"]
    names: list[str] = []
    for niche in candidate["details"]["per_niche"].values():
        names = [k for k in niche if k != "count"]
        break
    primary = str(candidate.get("primary", ""))
    preferred = [primary, f"recall@{primary.partition('@')[2] or 3}"]
    return sorted(names, key=lambda n: (preferred.index(n) if n in preferred else 2, n))


def describe(figure: str) -> str:
    """What a per-niche figure means, in a sentence."""
    kind, _, k = figure.partition("@")
    if kind == "recall":
        return f"share of the niche's benchmark messages whose real reply is among the top {k}"
    if kind == "similarity":
        return f"mean cosine of the best of the top {k} suggestions to the real reply"
    if kind == "mrr":
        return (
            "mean of 1 / rank of the first suggestion that matches the real reply (1: always first)"
        )
    return figure


def _cell(value: float | None, top: float) -> tuple[float | None, str]:
    if value is None:
        return None, "heat-none"
    shade = round(SHADES * value / top) if top > 0 else 0
    return value, f"heat-{shade}"
