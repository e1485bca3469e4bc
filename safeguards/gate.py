"""The promotion gate: may a candidate model replace production?

A candidate is compared metric by metric with the pinned clean baseline (trained on human
data only) and with production:

- **block** when a diversity metric falls below the baseline or production by more than
  its tolerance; when a tail (rare-niche) coverage metric does; when the primary relevance
  metric, or the share of messages the model answers at all (``coverage``, triggering),
  falls below production (the baseline when there is no production yet) by more than its
  tolerance (relevance 3%, coverage 7%); or when a metric the references have was not measured on the
  candidate, or the evaluations were not made on the same benchmark the same way; or when the
  candidate shows any inappropriate suggestion for a sensitive message of the everyday
  benchmark (safeguards.everyday: a death, illness, injury, danger or distress gets sympathetic
  suggestions or none), whatever the references do: an absolute rule, not a tolerance
  (``Tolerances.sensitive_rule``, on by default; REPLYGUARD_GATE__SENSITIVE_RULE=false turns it
  off).
- **warn** when a diversity metric has fallen for ``decline_generations`` generations in a
  row, even inside tolerance (a slow steady decline is how collapse starts), or when no
  fresh human examples arrived since the previous generation (the generation can only add
  model-influenced data on top of the same human data).
- **pass** otherwise.

Tolerances are relative (0.05 = may fall 5% of the reference value). The defaults (in the
metric registry, safeguards.metrics) come from how much the metrics move when nothing changes: the demo corpus's baseline retrained
with eight seeds (13-20) and the scoring weights pinned, on the same benchmark (294
examples). Relative standard deviations: distinct-1 2.8%, distinct-2 2.7%, distinct share
1.0%, entropy 0.2%, Vendi 1.7%, pairwise distance 1.7%, accuracy@3 0.9% (1.2% with the weights
chosen by training). A tolerance of 3 standard deviations of the *difference* of two such
retrains (3 x sqrt(2) x sd) rarely blocks a retrain that changed nothing:

- diversity 5% (distinct share, entropy: a floor, their noise alone would allow 1-4%);
  distinct-1 12%, distinct-2 11%, Vendi 7%, pairwise distance 7% (``per_metric``). A
  collapse that narrows suggestions by a few per cent a generation still crosses these
  within two or three generations, and the decline warning fires before that.
- tail 10%, and never less than one benchmark example: the tail pools the benchmark
  examples of the rarest niches, only 13 on the demo corpus, so one example moves accuracy by
  8 points; a purely relative tolerance would block on a single example.
- relevance 3%, about two standard deviations of a retrain's difference: relevance has no
  baseline floor (it is meant to improve on it), so a looser tolerance would let it drift
  down a little every generation.
- a step of a decline counts only when the metric fell by at least a quarter of its
  tolerance, so the jitter above does not raise a warning every other generation.

Re-measured on today's demo (10,000 chitchat pairs, 38 served replies; bench/collapse_noise.py,
docs/collapse.md "Noise"): every held metric is at least 2.4 standard deviations of a two-seed
difference inside its tolerance (Vendi the closest). Coverage has its own tolerance, 7%: it moves
with the triggering threshold, a quantile of held-out scores (1.6% relative sd once the held-out
tenth stopped depending on the seed; 5.5% before), and the relevance kind's 3% blocked retrains
that changed nothing. On the 5,000-pair demo (19 replies) distinct-2 moved by 10.6%: on a
response set that small, read its blocks against that noise.

The same experiment with the weights chosen by training (as each generation does) moved
the diversity metrics far more (distinct share up to 21%, Vendi 37%) at the same relevance:
the weight search picks among near-equal relevance options that differ widely in
diversity. The gate rightly blocks the blander picks; training is where to fix it.

All three evaluations must come from the same evaluator (benchmark, niche counts, settings):
evaluate the baseline and production again along with each candidate; it is one pass over
the benchmark.

Example:
    >>> decision = decide(cand, prod, base, history, Tolerances(), 120)  # doctest: +SKIP
    >>> decision.verdict, decision.reasons[0]  # doctest: +SKIP
    ('block', 'Suggestion variety (distinct share) fell 18% below the clean baseline ...')
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any
from typing import Literal

from safeguards.everyday import SENSITIVE_INAPPROPRIATE
from safeguards.metrics import KIND_TOLERANCES
from safeguards.metrics import OLD_DEPTH
from safeguards.metrics import SCHEMA_VERSION
from safeguards.metrics import Evaluation
from safeguards.metrics import Metric
from safeguards.metrics import MetricKind
from safeguards.metrics import comparable_details
from safeguards.metrics import default_tolerances
from safeguards.metrics import gated_by_default
from safeguards.metrics import is_current
from safeguards.metrics import metric_spec
from safeguards.metrics import relative_loss
from safeguards.metrics import rename_metric
from safeguards.metrics import upgrade_evaluation

Verdict = Literal["pass", "warn", "block"]
BASELINE = "the clean baseline"
PRODUCTION = "production"


@dataclass(frozen=True)
class Tolerances:
    """How far each metric may fall before the gate blocks (see the module docstring).

    The defaults of ``diversity``, ``tail``, ``relevance`` and ``per_metric`` are the metric
    registry's (safeguards.metrics.KIND_TOLERANCES and METRICS).

    Args:
        diversity: relative tolerance of every diversity metric.
        tail: relative tolerance of every tail-coverage metric.
        relevance: relative tolerance of the primary relevance metric (and of coverage).
        tail_examples: a tail metric may also fall by this many benchmark examples' worth
            (``tail_examples / support``), whichever allows more.
        per_metric: relative tolerances by metric name, overriding the kind's (defaults:
            the noisier diversity metrics, see the module docstring).
        decline_generations: consecutive falls of a diversity metric that raise a warning.
        decline_step: the smallest fall that counts as a step of a decline, as a share of
            the metric's tolerance.
        sensitive_rule: block a candidate that shows any inappropriate suggestion for a
            sensitive everyday message (``sensitive_inappropriate@3`` above 0); False leaves
            that metric reported only (REPLYGUARD_GATE__SENSITIVE_RULE).

    Raises:
        ValueError: a tolerance outside [0, 1), or a negative count.
    """

    diversity: float = KIND_TOLERANCES["diversity"]
    tail: float = KIND_TOLERANCES["tail"]
    relevance: float = KIND_TOLERANCES["relevance"]
    tail_examples: int = 1
    per_metric: Mapping[str, float] = field(default_factory=default_tolerances)
    decline_generations: int = 2
    decline_step: float = 0.25
    sensitive_rule: bool = True

    def __post_init__(self) -> None:
        for name, value in [
            ("diversity", self.diversity),
            ("tail", self.tail),
            ("relevance", self.relevance),
            *self.per_metric.items(),
        ]:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"tolerance {name!r} must be in [0, 1), not {value}")
        if self.decline_generations < 1 or self.tail_examples < 0 or self.decline_step < 0:
            raise ValueError(
                "decline_generations must be positive, tail_examples and decline_step >= 0"
            )

    @classmethod
    def overridden(cls, per_metric: Mapping[str, float], sensitive_rule: bool = True) -> Tolerances:
        """The default tolerances, with these relative tolerances by metric name on top of
        the registry's own (REPLYGUARD_GATE__PER_METRIC; empty: exactly the defaults), and the
        sensitive rule on or off (REPLYGUARD_GATE__SENSITIVE_RULE).

        Raises:
            ValueError: a name the metric registry does not know (a misspelt name would
                silently gate nothing), or a tolerance outside [0, 1).
        """
        unknown = sorted(name for name in per_metric if metric_spec(name) is None)
        if unknown:
            raise ValueError(
                f"no metric named {', '.join(map(repr, unknown))}; the gate's metrics are "
                "those of an evaluation (`replyguard models show VERSION` lists them), "
                "e.g. vendi, distinct_2, accuracy@3, mrr@10, tail_similarity@3"
            )
        return cls(per_metric={**default_tolerances(), **per_metric}, sensitive_rule=sensitive_rule)

    def relative(self, name: str, kind: MetricKind) -> float:
        """The relative tolerance of one metric."""
        if name in self.per_metric:
            return self.per_metric[name]
        return {"diversity": self.diversity, "tail": self.tail, "relevance": self.relevance}[kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "diversity": self.diversity,
            "tail": self.tail,
            "relevance": self.relevance,
            "tail_examples": self.tail_examples,
            "per_metric": dict(self.per_metric),
            "decline_generations": self.decline_generations,
            "decline_step": self.decline_step,
            "sensitive_rule": self.sensitive_rule,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tolerances:
        """Read :meth:`to_dict`; missing keys take the defaults (``per_figure``, its name in
        decisions stored before schema 2, is read as ``per_metric``)."""
        per_metric = data.get("per_metric", data.get("per_figure", default_tolerances()))
        return cls(
            diversity=float(data.get("diversity", cls.diversity)),
            tail=float(data.get("tail", cls.tail)),
            relevance=float(data.get("relevance", cls.relevance)),
            tail_examples=int(data.get("tail_examples", cls.tail_examples)),
            per_metric={str(k): float(v) for k, v in per_metric.items()},
            decline_generations=int(data.get("decline_generations", cls.decline_generations)),
            decline_step=float(data.get("decline_step", cls.decline_step)),
            sensitive_rule=bool(data.get("sensitive_rule", cls.sensitive_rule)),
        )


@dataclass(frozen=True)
class MetricVerdict:
    """One metric across the three models, with the gate's verdict on it and why."""

    name: str
    kind: MetricKind
    label: str
    greater_is_better: bool
    baseline: float | None
    production: float | None
    candidate: float | None
    # None for metrics the gate reports but does not judge (e.g. head-niche relevance).
    tolerance: float | None
    verdict: Verdict
    reasons: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "label": self.label,
            "greater_is_better": self.greater_is_better,
            "baseline": self.baseline,
            "production": self.production,
            "candidate": self.candidate,
            "tolerance": self.tolerance,
            "verdict": self.verdict,
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MetricVerdict:
        return cls(
            name=str(data["name"]),
            kind=data["kind"],
            label=str(data.get("label", "")),
            greater_is_better=bool(data.get("greater_is_better", True)),
            baseline=_optional_float(data.get("baseline")),
            production=_optional_float(data.get("production")),
            candidate=_optional_float(data.get("candidate")),
            tolerance=_optional_float(data.get("tolerance")),
            verdict=data["verdict"],
            reasons=tuple(str(r) for r in data.get("reasons", [])),
        )


@dataclass(frozen=True)
class Decision:
    """The gate's decision: a serialisable record a person can read.

    ``reasons`` lists every block reason first, then every warning; for a pass it says so.
    """

    verdict: Verdict
    metrics: tuple[MetricVerdict, ...]
    reasons: tuple[str, ...]
    tolerances: Tolerances
    compared_with: tuple[str, ...]
    fresh_human_examples: int

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    def metric(self, name: str) -> MetricVerdict:
        for item in self.metrics:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "schema": SCHEMA_VERSION,
            "metrics": [m.to_dict() for m in self.metrics],
            "tolerances": self.tolerances.to_dict(),
            "compared_with": list(self.compared_with),
            "fresh_human_examples": self.fresh_human_examples,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        """Read :meth:`to_dict`, in this layout or an older one (:func:`upgrade_decision`).

        Raises:
            ValueError: a schema version this code does not know.
        """
        data = upgrade_decision(data)
        return cls(
            verdict=data["verdict"],
            metrics=tuple(MetricVerdict.from_dict(m) for m in data["metrics"]),
            reasons=tuple(str(r) for r in data["reasons"]),
            tolerances=Tolerances.from_dict(data.get("tolerances", {})),
            compared_with=tuple(str(c) for c in data.get("compared_with", [])),
            fresh_human_examples=int(data.get("fresh_human_examples", 0)),
        )


def upgrade_decision(data: Mapping[str, Any], depth: int = OLD_DEPTH) -> dict[str, Any]:
    """A decision dict in the current layout, whatever layout it was stored in.

    Before schema 2 (no ``schema`` key) a decision kept its verdicts under ``"figures"``,
    named ``recall@k`` and ``mrr``, and its tolerances' overrides under ``"per_figure"``.
    Renamed here as :func:`safeguards.metrics.upgrade_evaluation` renames evaluations, with
    labels refreshed from the registry; the reasons are kept as the gate wrote them, and so
    is every other key (an override's ``overridden_by``, for one).

    Args:
        data: a stored ``Decision.to_dict()``, or the clean baseline's verdict and reasons.
        depth: the evaluations' depth, the cut-off of their MRR (decisions did not record
            it; ``details.config.depth`` of the generation's evaluations has it).

    Returns:
        A new dict with ``"schema"`` :data:`~safeguards.metrics.SCHEMA_VERSION`.

    Raises:
        ValueError: a schema version this code does not know.
    """
    if is_current(data, "decision"):
        return dict(data)
    upgraded = {key: value for key, value in data.items() if key != "figures"}
    upgraded["schema"] = SCHEMA_VERSION
    if "figures" in data:
        upgraded["metrics"] = []
        for item in data["figures"]:
            verdict = {**item, "name": rename_metric(str(item["name"]), depth)}
            spec = metric_spec(verdict["name"])
            if spec is not None:
                verdict["label"] = spec.label
            upgraded["metrics"].append(verdict)
    tolerances = data.get("tolerances")
    if isinstance(tolerances, Mapping) and "per_figure" in tolerances:
        upgraded["tolerances"] = {
            ("per_metric" if key == "per_figure" else key): value
            for key, value in tolerances.items()
        }
    return upgraded


def upgrade_generation(
    metrics: Mapping[str, Any] | None, decision: Mapping[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A generation's stored evaluations (``Generation.metrics``, by role) and decision
    (``Generation.decision``) in the current layout, for code that reads them as dicts.

    Args:
        metrics: by role (candidate, production, baseline), each an evaluation dict with
            its ``version``; None or empty before the evaluate stage.
        decision: the gate's decision; None or empty before the gate stage.

    Returns:
        ``(metrics, decision)``, each a new dict (empty for None).

    Raises:
        ValueError: a schema version this code does not know.
    """
    roles = {role: upgrade_evaluation(ev) for role, ev in (metrics or {}).items() if ev}
    config = roles.get("candidate", {}).get("details", {}).get("config", {})
    depth = int(config.get("depth", OLD_DEPTH))
    return roles, upgrade_decision(decision, depth) if decision else {}


def decide(
    candidate: Evaluation,
    production: Evaluation | None,
    baseline: Evaluation,
    history: Sequence[Evaluation],
    tolerances: Tolerances | None,
    fresh_human_examples: int,
) -> Decision:
    """Decide whether a candidate may be promoted.

    Args:
        candidate: the candidate's evaluation.
        production: production's evaluation on the same benchmark; None for the first
            generation, which is then compared with the baseline only.
        baseline: the pinned clean baseline's evaluation on the same benchmark.
        history: evaluations of the earlier generations, oldest first, the last being the
            generation just before the candidate (normally production). Only used to spot a
            steady decline.
        tolerances: see :class:`Tolerances`; None for the defaults.
        fresh_human_examples: human examples that arrived since the previous generation.

    Returns:
        A :class:`Decision`: the verdict, a verdict per metric, and readable reasons.
    """
    tolerances = tolerances or Tolerances()
    references: list[tuple[str, Evaluation]] = [(BASELINE, baseline)]
    if production is not None:
        references.append((PRODUCTION, production))

    verdicts = [
        _judge(name, candidate, baseline, production, history, tolerances)
        for name in _metric_names(candidate, baseline, production)
    ]
    if tolerances.sensitive_rule:
        verdicts = [
            _sensitive_rule(v, candidate) if v.name == SENSITIVE_INAPPROPRIATE else v
            for v in verdicts
        ]
    # The sensitive rule's block first: it is about what a person in distress would see.
    ordered = sorted(verdicts, key=lambda v: v.name != SENSITIVE_INAPPROPRIATE)
    blocks = [r for v in ordered if v.verdict == "block" for r in v.reasons]
    warnings = [r for v in verdicts if v.verdict == "warn" for r in v.reasons]
    for who, reference in references:
        mismatch = _incomparable(candidate, reference)
        if mismatch:
            blocks.append(
                f"The candidate and {who} were not measured the same way ({mismatch} differ); "
                "evaluate both with the same benchmark and settings before deciding."
            )
    if fresh_human_examples <= 0:
        warnings.append(
            "No new human-written examples arrived since the previous generation, so this "
            "generation adds only model-influenced data on top of the same human data."
        )
    if blocks:
        verdict: Verdict = "block"
    elif warnings:
        verdict = "warn"
    else:
        verdict = "pass"
    reasons = [*blocks, *warnings]
    if not reasons:
        against = " and ".join(who for who, _ in references)
        reasons.append(
            f"Every diversity, rare-niche and relevance metric is within tolerance of {against}."
        )
    return Decision(
        verdict=verdict,
        metrics=tuple(verdicts),
        reasons=tuple(reasons),
        tolerances=tolerances,
        compared_with=tuple(who for who, _ in references),
        fresh_human_examples=fresh_human_examples,
    )


def _metric_names(*evaluations: Evaluation | None) -> list[str]:
    names: dict[str, None] = {}
    for evaluation in evaluations:
        if evaluation is not None:
            names.update(dict.fromkeys(evaluation.metrics))
    return list(names)


def _judge(
    name: str,
    candidate: Evaluation,
    baseline: Evaluation,
    production: Evaluation | None,
    history: Sequence[Evaluation],
    tolerances: Tolerances,
) -> MetricVerdict:
    mine = candidate.metrics.get(name)
    base = baseline.metrics.get(name)
    prod = production.metrics.get(name) if production is not None else None
    known = mine or base or prod
    assert known is not None  # the name came from one of the three
    label = known.title

    gated = name == candidate.primary or gated_by_default(name, known.kind)
    tolerance = tolerances.relative(name, known.kind) if gated else None

    def record(verdict: Verdict, reasons: Sequence[str]) -> MetricVerdict:
        return MetricVerdict(
            name=name,
            kind=known.kind,
            label=label,
            greater_is_better=known.greater_is_better,
            baseline=base.value if base else None,
            production=prod.value if prod else None,
            candidate=mine.value if mine else None,
            tolerance=tolerance,
            verdict=verdict,
            reasons=tuple(reasons),
        )

    if tolerance is None:
        return record("pass", [])
    if mine is None:
        missing = f"{_capital(label)} was not measured on the candidate, so it cannot be checked."
        return record("block", [missing])

    # Relevance is allowed to move away from the baseline (later generations should beat
    # it); only a fall below production, or below the baseline before there is a production,
    # is a regression.
    if known.kind == "relevance":
        comparisons = [(PRODUCTION, prod)] if production is not None else [(BASELINE, base)]
    else:
        comparisons = [(BASELINE, base), (PRODUCTION, prod)]

    reasons: list[str] = []
    for who, reference in comparisons:
        if reference is None:
            continue
        reason = _fall(mine, reference, who, tolerance, tolerances)
        if reason:
            reasons.append(reason)
    if reasons:
        return record("block", reasons)

    if known.kind == "diversity":
        decline = _steady_decline(name, candidate, history, tolerances)
        if decline:
            return record("warn", [decline])
    return record("pass", [])


def _sensitive_rule(verdict: MetricVerdict, candidate: Evaluation) -> MetricVerdict:
    """The verdict on ``sensitive_inappropriate@3`` under the sensitive rule: block when the
    candidate shows any inappropriate suggestion for a sensitive everyday message (or was
    not measured on them while a reference was), naming the count and one example."""
    mine = candidate.metrics.get(SENSITIVE_INAPPROPRIATE)
    if mine is None:
        reason = (
            f"{_capital(verdict.label)} was not measured on the candidate, so the rule that no "
            "sensitive everyday message gets an inappropriate suggestion cannot be checked."
        )
        return replace(verdict, verdict="block", reasons=(reason,))
    summary = candidate.details.get("everyday")
    summary = summary if isinstance(summary, Mapping) else {}
    total = int(summary.get("sensitive", mine.support))
    count = int(summary.get("sensitive_inappropriate", round(mine.value * total)))
    if count <= 0 and mine.value <= 0:
        return replace(verdict, verdict="pass", reasons=())
    count = max(count, 1)
    examples = summary.get("sensitive_examples") or []
    example = ""
    if examples and isinstance(examples[0], Mapping):
        first = examples[0]
        example = (
            f", e.g. {str(first.get('suggestion', ''))!r} (intent {first.get('intent', '?')}) "
            f"for {str(first.get('message', ''))!r}"
        )
    messages = "message" if total == 1 else "messages"
    reason = (
        f"The candidate shows an inappropriate suggestion for {count} of {total} sensitive "
        f"everyday {messages}{example}; a message about loss, illness, danger or distress "
        "gets sympathetic suggestions or none (REPLYGUARD_GATE__SENSITIVE_RULE)."
    )
    return replace(verdict, verdict="block", reasons=(reason,))


def _fall(
    mine: Metric, reference: Metric, who: str, tolerance: float, tolerances: Tolerances
) -> str | None:
    """A reason when ``mine`` is worse than ``reference`` by more than allowed."""
    worse_by = reference.value - mine.value
    if not mine.greater_is_better:
        worse_by = -worse_by
    allowed = tolerance * abs(reference.value)
    slack = ""
    if mine.kind == "tail" and tolerances.tail_examples and mine.support > 0:
        # One example of a small pool moves accuracy by 1/support: never block on that alone.
        per_examples = tolerances.tail_examples / mine.support
        if per_examples > allowed:
            allowed = per_examples
            many = (
                "one benchmark example"
                if tolerances.tail_examples == 1
                else (f"{tolerances.tail_examples} benchmark examples")
            )
            slack = f" (or {many} of {mine.support}, whichever is more)"
    # A hair of slack so a metric exactly at the tolerance passes despite float round-off.
    if worse_by <= allowed + 1e-12:
        return None
    loss = relative_loss(reference.value, mine.value, mine.greater_is_better)
    moved = "fell" if mine.greater_is_better else "rose"
    if math.isinf(loss):
        how = f"{moved} away from {who}'s zero"
    else:
        how = f"{moved} {_percent(loss)} {'below' if mine.greater_is_better else 'above'} {who}"
    return (
        f"{_capital(mine.title)} {how} ({_num(reference.value)} → {_num(mine.value)}); "
        f"tolerance is {_percent(tolerance)}{slack}."
    )


def _steady_decline(
    name: str, candidate: Evaluation, history: Sequence[Evaluation], tolerances: Tolerances
) -> str | None:
    """A warning when the metric fell at each of the last ``decline_generations`` steps."""
    steps = tolerances.decline_generations
    series = [*history[-steps:], candidate] if len(history) >= steps else []
    if not series or any(name not in e.metrics for e in series):
        return None
    metrics = [e.metrics[name] for e in series]
    for before, after in itertools.pairwise(metrics):
        step = relative_loss(before.value, after.value, after.greater_is_better)
        if step <= 0 or step < tolerances.decline_step * tolerances.relative(name, after.kind):
            return None
    trail = " → ".join(_num(m.value) for m in metrics)
    return (
        f"{_capital(metrics[-1].title)} has fallen {steps} generations in a row ({trail}), each "
        "time inside tolerance; a slow steady decline is how collapse starts."
    )


def _incomparable(candidate: Evaluation, reference: Evaluation) -> str:
    # A reference evaluated before new human examples arrived is kept (the evaluation cache
    # is keyed by the same details), so they compare as comparable_details normalises them.
    mine, theirs = comparable_details(candidate.details), comparable_details(reference.details)
    differ = [key for key in mine if key in theirs and mine[key] != theirs[key]]
    return ", ".join(differ).replace("_", " ")


def _percent(share: float) -> str:
    value = 100 * share
    return f"{value:.1f}%" if 0 < abs(value) < 10 and value != round(value) else f"{value:.0f}%"


def _num(value: float) -> str:
    return f"{value:.3g}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
