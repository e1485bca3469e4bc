"""The collapse experiment's report: results.json, summary.md (when the gate and the
comparison detector first fire, per policy; every generation's metrics) and a chart per
metric the metric registry marks for it (safeguards.metrics, ``MetricSpec.collapse``)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safeguards.detector import first_firing
from safeguards.evaluator import EvaluationConfig
from safeguards.metrics import collapse_metrics
from safeguards.metrics import metric_label
from worker.simulation.policies import POLICIES
from worker.simulation.run import GenerationResult
from worker.simulation.run import Plan

# The metrics are shown at the cut-off of the suggestions a user is shown.
SHOWN = EvaluationConfig().diversity_k
# The metrics charted, and those of the per-generation tables (relevance for all, common and
# rare niches, and coverage, beside the diversity metrics), as the registry marks them.
PLOTTED = tuple(collapse_metrics(SHOWN, charted=True))
TABLED = tuple(collapse_metrics(SHOWN))


def write_report(
    results: Sequence[GenerationResult], out: Path, command: str, plan: Plan
) -> list[Path]:
    """results.json, summary.md and one PNG per plotted metric; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=2, ensure_ascii=False)
    )
    written = [out / "results.json", *_plots(results, out)]
    (out / "summary.md").write_text(_summary(results, command, plan, [p.name for p in written[1:]]))
    written.append(out / "summary.md")
    return written


def first_gate_event(
    results: Sequence[GenerationResult], policy: str, verdict: str
) -> tuple[int, list[str]] | None:
    """The first generation where some metric got ``verdict`` (a block counts as a warning),
    with the metrics that got it; None when none did. The "no fresh human examples" warning
    is not a metric's and does not count."""
    wanted = {"warn", "block"} if verdict == "warn" else {verdict}
    for r in sorted(results, key=lambda r: r.generation):
        tripped = [name for name, v in r.metric_verdicts.items() if v in wanted]
        if r.policy == policy and tripped:
            return r.generation, tripped
    return None


def detector_events(
    results: Sequence[GenerationResult], policy: str
) -> dict[str, tuple[int, str] | None]:
    """When each tier of the comparison detector (safeguards.detector) first fires for a
    policy, and on which metric."""
    rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.generation)
    return first_firing([r.detector for r in rows])


def _event(event: tuple[int, Any] | None) -> str:
    if event is None:
        return "never"
    generation, what = event
    names = what if isinstance(what, str) else ", ".join(what)
    return f"{generation} ({names})"


def _summary(
    results: Sequence[GenerationResult], command: str, plan: Plan, plots: list[str]
) -> str:
    policies = [p for p in POLICIES if any(r.policy == p for r in results)]
    lines = [
        "# Collapse experiment",
        "",
        f"    {command}",
        "",
        f"{plan.generations} generations; each labels a new slice of {plan.slice} incoming "
        "messages. Fresh human examples per generation: "
        + ", ".join(f"{p} {plan.fresh_human.get(p, 0)}" for p in policies)
        + ".",
        "",
        "## First warning and first block: the gate and the comparison detector",
        "",
        "Every candidate is judged, whatever the policy then does with it. The gate's columns "
        "name the metrics that tripped it (the no-fresh-human-data warning is not counted); "
        "the detector (safeguards/detector.py: rootiq-ai/model-collapse-detection's tiers, "
        "a drop of 10% (tier 1) or 20% (tier 3) below generation 0) names its metric.",
        "",
        "| policy | gate: first warn (or block) | gate: first block | detector tier 1 "
        "| detector tier 3 |",
        "|---|---|---|---|---|",
    ]
    for policy in policies:
        fired = detector_events(results, policy)
        lines.append(
            f"| {policy} | {_event(first_gate_event(results, policy, 'warn'))} "
            f"| {_event(first_gate_event(results, policy, 'block'))} "
            f"| {_event(fired['tier 1'])} | {_event(fired['tier 3'])} |"
        )
    for policy in policies:
        rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.generation)
        lines += [
            "",
            f"## {policy}",
            "",
            "| g | verdict (metrics) | "
            + " | ".join(TABLED)
            + " | bank | labelled | synthetic trained | fresh human | detector d-1 pooled "
            "| detector entropy | detector vocab |",
            "|---" * (len(TABLED) + 9) + "|",
        ]
        for r in rows:
            tripped = [n for n, v in r.metric_verdicts.items() if v != "pass"]
            verdict = r.verdict + (f" ({', '.join(tripped)})" if tripped else "")
            if r.fresh_warning:
                verdict += " (no fresh human data)"
            if not r.promoted:
                verdict += ", not promoted"
            cells = [f"{r.metrics.get(n, math.nan):.3f}" for n in TABLED]
            lines.append(
                f"| {r.generation} | {verdict} | "
                + " | ".join(cells)
                + f" | {r.bank_size} | {r.labelled} | {r.synthetic_trained} | {r.fresh_human} "
                f"| {r.detector.get('distinct_1_pooled', math.nan):.3f} "
                f"| {r.detector.get('entropy', math.nan):.3f} "
                f"| {r.detector.get('vocab_coverage', math.nan):.3f} |"
            )
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def _plots(results: Sequence[GenerationResult], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    policies = [p for p in POLICIES if any(r.policy == p for r in results)]
    titles = {name: metric_label(name) for name in PLOTTED}
    for name, title in [*titles.items(), ("bank_size", "Distinct replies the model can suggest")]:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        for policy in policies:
            rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.generation)
            values = [
                float(r.bank_size) if name == "bank_size" else r.metrics.get(name, float("nan"))
                for r in rows
            ]
            ax.plot([r.generation for r in rows], values, marker="o", label=policy)
            blocked = [
                (r.generation, v) for r, v in zip(rows, values, strict=True) if r.verdict == "block"
            ]
            if blocked:
                ax.scatter(
                    [g for g, _ in blocked],
                    [v for _, v in blocked],
                    marker="x",
                    color="red",
                    s=60,
                    zorder=3,
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation (red x: the gate blocks that candidate)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{name.replace('@', '_at_')}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
