"""The overview's charts: each gated metric over generations, next to the clean baseline and
the gate's tolerance band.

The metrics come from each generation's stored evaluations (``Generation.metrics``) and the
tolerances from its stored decision, so a chart shows what the gate saw when it decided.
Both are read through ``safeguards.gate.upgrade_generation``, whatever layout they were
stored in.
The page embeds the result as JSON; ``static/dashboard.js`` draws it with Chart.js.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from core.schema import Generation
from safeguards.gate import Tolerances
from safeguards.gate import upgrade_generation
from safeguards.metrics import Evaluation
from safeguards.metrics import Metric
from safeguards.metrics import gated_by_default

log = logging.getLogger(__name__)

VERDICT_MARKS = {"pass": "passed", "warn": "warned", "block": "blocked"}


@dataclass(frozen=True)
class Charted:
    """One generation as the charts see it."""

    number: int
    status: str
    # The gate's verdict as a status (blocked, warned, passed): an overridden generation
    # stays marked as blocked on the charts.
    mark: str
    overridden: bool
    url: str
    candidate: Evaluation
    baseline: Evaluation | None
    tolerances: Tolerances
    # Per metric, the tolerance the gate applied (absent for metrics it did not gate).
    applied: dict[str, float]


def charted(generations: Sequence[Generation], url: Callable[[Generation], str]) -> list[Charted]:
    """The generations that have a candidate evaluation, oldest first."""
    out: list[Charted] = []
    first_baseline: Evaluation | None = None
    for g in sorted(generations, key=lambda g: g.number):
        try:
            metrics, decision = upgrade_generation(g.metrics, g.decision)
            if not metrics.get("candidate"):
                continue
            candidate = Evaluation.from_dict(metrics["candidate"])
            baseline = (
                Evaluation.from_dict(metrics["baseline"]) if metrics.get("baseline") else None
            )
            tolerances = Tolerances.from_dict(decision.get("tolerances", {}))
        except (KeyError, TypeError, ValueError):
            # An evaluation stored in a layout this code cannot read: leave it off rather
            # than fail.
            log.warning("generation %s: stored evaluation cannot be read; not charted", g.number)
            continue
        if g.number == 0:
            # Generation 0 is the clean baseline itself.
            baseline = baseline or candidate
            first_baseline = candidate
        applied = {
            m["name"]: float(m["tolerance"])
            for m in decision.get("metrics", [])
            if m.get("tolerance") is not None
        }
        out.append(
            Charted(
                number=g.number,
                status=g.status,
                mark=VERDICT_MARKS.get(decision.get("verdict", ""), g.status),
                overridden=bool(decision.get("overridden_by")),
                url=url(g),
                candidate=candidate,
                baseline=baseline or first_baseline,
                tolerances=tolerances,
                applied=applied,
            )
        )
    return out


def chart_names(points: Sequence[Charted]) -> list[str]:
    """Relevance (the primary metric), coverage beside it (the share of messages answered),
    the primary's rare-niche version, then every diversity metric."""
    if not points:
        return []
    latest = points[-1].candidate
    names = [latest.primary]
    if "coverage" in latest.metrics:
        names.append("coverage")
    if f"tail_{latest.primary}" in latest.metrics:
        names.append(f"tail_{latest.primary}")
    # The diversity metrics the gate holds: a band around one it only reports (the everyday
    # benchmark's intents and distinct suggestions) would show a tolerance nobody applies.
    names += [f.name for f in latest.of_kind("diversity") if gated_by_default(f.name, f.kind)]
    return names


def build_charts(points: Sequence[Charted]) -> dict[str, Any]:
    """The JSON the overview embeds: labels, each point's status, and one entry per chart."""
    charts = [_chart(name, points) for name in chart_names(points)]
    return {
        "labels": [f"G{p.number}" for p in points],
        "numbers": [p.number for p in points],
        "statuses": [p.status for p in points],
        "marks": [p.mark for p in points],
        "overridden": [p.overridden for p in points],
        "links": [p.url for p in points],
        "charts": [c for c in charts if c is not None],
    }


def _chart(name: str, points: Sequence[Charted]) -> dict[str, Any] | None:
    known = next((p.candidate.metrics[name] for p in points if name in p.candidate.metrics), None)
    if known is None:
        return None
    values: list[float | None] = []
    baseline: list[float | None] = []
    low: list[float | None] = []
    high: list[float | None] = []
    tolerance = 0.0
    for p in points:
        mine = p.candidate.metrics.get(name)
        base = p.baseline.metrics.get(name) if p.baseline else None
        tolerance = p.applied.get(name, p.tolerances.relative(name, known.kind))
        values.append(mine.value if mine else None)
        baseline.append(base.value if base else None)
        band = _band(base, mine, tolerance, p.tolerances.tail_examples)
        low.append(band[0])
        high.append(band[1])
    chart = {
        "name": name,
        "title": known.title[:1].upper() + known.title[1:],
        "kind": known.kind,
        "greater_is_better": known.greater_is_better,
        "tolerance": tolerance,
        "values": values,
        "baseline": baseline,
        "band_low": low,
        "band_high": high,
    }
    chart["description"] = describe(chart, points)
    return chart


def _band(
    base: Metric | None, mine: Metric | None, tolerance: float, tail_examples: int
) -> tuple[float | None, float | None]:
    """The values within the gate's tolerance of the baseline (the gate's own arithmetic)."""
    if base is None:
        return None, None
    allowed = tolerance * abs(base.value)
    support = (mine or base).support
    if base.kind == "tail" and tail_examples and support > 0:
        # A tail metric may always move by one benchmark example (see safeguards.gate).
        allowed = max(allowed, tail_examples / support)
    if base.greater_is_better:
        return max(0.0, base.value - allowed), base.value
    return base.value, base.value + allowed


def describe(chart: dict[str, Any], points: Sequence[Charted]) -> str:
    """A sentence for screen readers: what the chart shows and where it ends."""
    marked = {
        mark: [
            f"G{p.number}" + (" (overridden)" if p.overridden else "")
            for p in points
            if p.mark == mark
        ]
        for mark in ("blocked", "warned")
    }
    values = [v for v in chart["values"] if v is not None]
    parts = [
        f"{chart['title']}, generations G{points[0].number} to G{points[-1].number}.",
        f"Latest {_num(values[-1])}." if values else "Not measured yet.",
    ]
    if chart["baseline"][-1] is not None:
        side = "below" if chart["greater_is_better"] else "above"
        parts.append(
            f"Clean baseline {_num(chart['baseline'][-1])}, tolerance "
            f"{chart['tolerance']:.0%} {side} it."
        )
    for mark, names in marked.items():
        if names:
            parts.append(f"{mark.capitalize()}: {', '.join(names)}.")
    return " ".join(parts)


def _num(value: float) -> str:
    return f"{value:.3g}"
