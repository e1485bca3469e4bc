"""Plain-text views of a generation, for the command line."""

from __future__ import annotations

from typing import Any

from core.schema import Generation
from safeguards.gate import upgrade_decision
from worker.pipeline import STAGES


def describe_generation(g: Generation) -> str:
    lines = [
        f"generation {g.number} (id {g.id}): {g.status}"
        + (f", verdict {g.decision.get('verdict')}" if g.decision else ""),
        f"  parent {g.parent_version or '-'}  candidate {g.candidate_version or '-'}",
    ]
    if g.error:
        lines.append(f"  error: {g.error}")
    lines.append("  stages:")
    for name in STAGES:
        record: dict[str, Any] = (g.stages or {}).get(name, {})
        if not record:
            lines.append(f"    {name:12} -")
            continue
        seconds = f"{record['seconds']:.1f} s" if "seconds" in record else ""
        progress = f"{100 * record.get('progress', 0):.0f}%"
        counts = record.get("counts", {})
        shown = ", ".join(
            f"{k} {_value(v)}" for k, v in counts.items() if not isinstance(v, (list, dict))
        )
        nested = ", ".join(
            f"{k}: " + ", ".join(f"{a} {_value(b)}" for a, b in v.items())
            for k, v in counts.items()
            if isinstance(v, dict)
        )
        detail = "; ".join(part for part in (shown, nested) if part)
        lines.append(
            f"    {name:12} {record.get('status', ''):8} {progress:>5} {seconds:>8}  {detail}"
        )
    decision = upgrade_decision(g.decision or {})
    if decision.get("metrics"):
        lines.append("  metrics (baseline / production / candidate):")
        for m in decision["metrics"]:
            values = " / ".join(
                "-" if m.get(k) is None else f"{m[k]:.3f}"
                for k in ("baseline", "production", "candidate")
            )
            lines.append(f"    {m['name']:28} {values}  {m.get('verdict', '')}")
    for reason in decision.get("reasons", []):
        lines.append(f"  - {reason}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    """A count as a person reads it: "-" for nothing, four significant digits for a share or
    a score (0.8314, not 0.8314035916824196), whole numbers and names as they are."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)
