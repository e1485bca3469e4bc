"""The promotion gate: may a candidate model replace production?

A candidate is compared figure by figure with the pinned clean baseline (trained on human
data only) and with production:

- **block** when a diversity figure falls below the baseline or production by more than
  its tolerance; when a tail (rare-niche) coverage figure does; when the primary relevance
  figure, or the share of messages the model answers at all (``coverage``, triggering),
  falls below production (the baseline when there is no production yet) by more than the
  relevance tolerance; or when a figure the references have was not measured on the candidate, or
  the evaluations were not made on the same benchmark the same way.
- **warn** when a diversity figure has fallen for ``decline_generations`` generations in a
  row, even inside tolerance (a slow steady decline is how collapse starts), or when no
  fresh human examples arrived since the previous generation (the generation can only add
  model-influenced data on top of the same human data).
- **pass** otherwise.

Tolerances are relative (0.05 = may fall 5% of the reference value). The defaults come
from how much the figures move when nothing changes: the demo corpus's baseline retrained
with eight seeds (13-20) and the scoring weights pinned, on the same benchmark (294
examples). Relative standard deviations: distinct-1 2.8%, distinct-2 2.7%, distinct share
1.0%, entropy 0.2%, Vendi 1.7%, pairwise distance 1.7%, recall@3 0.9% (1.2% with the weights
chosen by training). A tolerance of 3 standard deviations of the *difference* of two such
retrains (3 x sqrt(2) x sd) rarely blocks a retrain that changed nothing:

- diversity 5% (distinct share, entropy: a floor, their noise alone would allow 1-4%);
  distinct-1 12%, distinct-2 11%, Vendi 7%, pairwise distance 7% (``per_figure``). A
  collapse that narrows suggestions by a few per cent a generation still crosses these
  within two or three generations, and the decline warning fires before that.
- tail 10%, and never less than one benchmark example: the tail pools the benchmark
  examples of the rarest niches, only 13 on the demo corpus, so one example moves recall by
  8 points; a purely relative tolerance would block on a single example.
- relevance 3%, about two standard deviations of a retrain's difference: relevance has no
  baseline floor (it is meant to improve on it), so a looser tolerance would let it drift
  down a little every generation.
- a step of a decline counts only when the figure fell by at least a quarter of its
  tolerance, so the jitter above does not raise a warning every other generation.

Re-measured on today's chitchat demo, whose response set serves only 19 replies
(bench/collapse_noise.py, docs/collapse.md "Noise"): entropy, pairwise distance, relevance and
the tail stay well inside these tolerances, Vendi nearly, but distinct-2 (10.6% relative sd)
and coverage (5.3%) move more between two seeds than their tolerances allow, so on a response
set that small they block retrains that changed nothing.

The same experiment with the weights chosen by training (as each generation does) moved
the diversity figures far more (distinct share up to 21%, Vendi 37%) at the same relevance:
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
from typing import Any
from typing import Literal

from safeguards.evaluation import Evaluation
from safeguards.evaluation import Figure
from safeguards.evaluation import FigureKind
from safeguards.evaluation import relative_loss

Verdict = Literal["pass", "warn", "block"]
# Evaluation details that must agree for two evaluations to be comparable.
_COMPARABLE_DETAILS = ("benchmark_fingerprint", "benchmark_size", "tail_niches", "config")
# Diversity figures that move more between retrains than the kind's 5% allows for (3 sd of
# the difference of two retrains, see the module docstring).
NOISY_FIGURES: Mapping[str, float] = {
    "distinct_1": 0.12,
    "distinct_2": 0.11,
    "vendi": 0.07,
    "pairwise_distance": 0.07,
}
# Relevance figures held like the primary one: a model that answers fewer messages
# (triggering) serves fewer people, whatever its relevance where it answers.
GATED_RELEVANCE = ("coverage",)
BASELINE = "the clean baseline"
PRODUCTION = "production"


@dataclass(frozen=True)
class Tolerances:
    """How far each figure may fall before the gate blocks (see the module docstring).

    Args:
        diversity: relative tolerance of every diversity figure.
        tail: relative tolerance of every tail-coverage figure.
        relevance: relative tolerance of the primary relevance figure.
        tail_examples: a tail figure may also fall by this many benchmark examples' worth
            (``tail_examples / support``), whichever allows more.
        per_figure: relative tolerances by figure name, overriding the kind's (defaults:
            the noisier diversity figures, see the module docstring).
        decline_generations: consecutive falls of a diversity figure that raise a warning.
        decline_step: the smallest fall that counts as a step of a decline, as a share of
            the figure's tolerance.
    """

    diversity: float = 0.05
    tail: float = 0.10
    relevance: float = 0.03
    tail_examples: int = 1
    per_figure: Mapping[str, float] = field(default_factory=lambda: dict(NOISY_FIGURES))
    decline_generations: int = 2
    decline_step: float = 0.25

    def __post_init__(self) -> None:
        for name, value in [
            ("diversity", self.diversity),
            ("tail", self.tail),
            ("relevance", self.relevance),
            *self.per_figure.items(),
        ]:
            if not 0.0 <= value < 1.0:
                raise ValueError(f"tolerance {name!r} must be in [0, 1), not {value}")
        if self.decline_generations < 1 or self.tail_examples < 0 or self.decline_step < 0:
            raise ValueError(
                "decline_generations must be positive, tail_examples and decline_step >= 0"
            )

    @classmethod
    def overridden(cls, per_figure: Mapping[str, float]) -> Tolerances:
        """The default tolerances, with these relative tolerances by figure name on top of
        the defaults' own (REPLYGUARD_GATE_TOLERANCES; empty: exactly the defaults).

        Raises:
            ValueError: a tolerance outside [0, 1).
        """
        return cls(per_figure={**NOISY_FIGURES, **per_figure})

    def relative(self, name: str, kind: FigureKind) -> float:
        """The relative tolerance of one figure."""
        if name in self.per_figure:
            return self.per_figure[name]
        return {"diversity": self.diversity, "tail": self.tail, "relevance": self.relevance}[kind]

    def to_dict(self) -> dict[str, Any]:
        return {
            "diversity": self.diversity,
            "tail": self.tail,
            "relevance": self.relevance,
            "tail_examples": self.tail_examples,
            "per_figure": dict(self.per_figure),
            "decline_generations": self.decline_generations,
            "decline_step": self.decline_step,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tolerances:
        return cls(
            diversity=float(data.get("diversity", cls.diversity)),
            tail=float(data.get("tail", cls.tail)),
            relevance=float(data.get("relevance", cls.relevance)),
            tail_examples=int(data.get("tail_examples", cls.tail_examples)),
            per_figure={str(k): float(v) for k, v in data.get("per_figure", NOISY_FIGURES).items()},
            decline_generations=int(data.get("decline_generations", cls.decline_generations)),
            decline_step=float(data.get("decline_step", cls.decline_step)),
        )


@dataclass(frozen=True)
class FigureVerdict:
    """One figure across the three models, with the gate's verdict on it and why."""

    name: str
    kind: FigureKind
    label: str
    greater_is_better: bool
    baseline: float | None
    production: float | None
    candidate: float | None
    # None for figures the gate reports but does not judge (e.g. head-niche relevance).
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
    def from_dict(cls, data: Mapping[str, Any]) -> FigureVerdict:
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
    figures: tuple[FigureVerdict, ...]
    reasons: tuple[str, ...]
    tolerances: Tolerances
    compared_with: tuple[str, ...]
    fresh_human_examples: int

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    def figure(self, name: str) -> FigureVerdict:
        for item in self.figures:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "figures": [f.to_dict() for f in self.figures],
            "tolerances": self.tolerances.to_dict(),
            "compared_with": list(self.compared_with),
            "fresh_human_examples": self.fresh_human_examples,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        return cls(
            verdict=data["verdict"],
            figures=tuple(FigureVerdict.from_dict(f) for f in data["figures"]),
            reasons=tuple(str(r) for r in data["reasons"]),
            tolerances=Tolerances.from_dict(data.get("tolerances", {})),
            compared_with=tuple(str(c) for c in data.get("compared_with", [])),
            fresh_human_examples=int(data.get("fresh_human_examples", 0)),
        )


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
        A :class:`Decision`: the verdict, a verdict per figure, and readable reasons.
    """
    tolerances = tolerances or Tolerances()
    references: list[tuple[str, Evaluation]] = [(BASELINE, baseline)]
    if production is not None:
        references.append((PRODUCTION, production))

    verdicts = [
        _judge(name, candidate, baseline, production, history, tolerances)
        for name in _figure_names(candidate, baseline, production)
    ]
    blocks = [r for v in verdicts if v.verdict == "block" for r in v.reasons]
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
            f"Every diversity, rare-niche and relevance figure is within tolerance of {against}."
        )
    return Decision(
        verdict=verdict,
        figures=tuple(verdicts),
        reasons=tuple(reasons),
        tolerances=tolerances,
        compared_with=tuple(who for who, _ in references),
        fresh_human_examples=fresh_human_examples,
    )


def _figure_names(*evaluations: Evaluation | None) -> list[str]:
    names: dict[str, None] = {}
    for evaluation in evaluations:
        if evaluation is not None:
            names.update(dict.fromkeys(evaluation.figures))
    return list(names)


def _judge(
    name: str,
    candidate: Evaluation,
    baseline: Evaluation,
    production: Evaluation | None,
    history: Sequence[Evaluation],
    tolerances: Tolerances,
) -> FigureVerdict:
    mine = candidate.figures.get(name)
    base = baseline.figures.get(name)
    prod = production.figures.get(name) if production is not None else None
    known = mine or base or prod
    assert known is not None  # the name came from one of the three
    label = known.title

    gated = known.kind in ("diversity", "tail") or name in (candidate.primary, *GATED_RELEVANCE)
    tolerance = tolerances.relative(name, known.kind) if gated else None

    def record(verdict: Verdict, reasons: Sequence[str]) -> FigureVerdict:
        return FigureVerdict(
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


def _fall(
    mine: Figure, reference: Figure, who: str, tolerance: float, tolerances: Tolerances
) -> str | None:
    """A reason when ``mine`` is worse than ``reference`` by more than allowed."""
    worse_by = reference.value - mine.value
    if not mine.greater_is_better:
        worse_by = -worse_by
    allowed = tolerance * abs(reference.value)
    slack = ""
    if mine.kind == "tail" and tolerances.tail_examples and mine.support > 0:
        # One example of a small pool moves recall by 1/support: never block on that alone.
        per_examples = tolerances.tail_examples / mine.support
        if per_examples > allowed:
            allowed = per_examples
            many = (
                "one benchmark example"
                if tolerances.tail_examples == 1
                else (f"{tolerances.tail_examples} benchmark examples")
            )
            slack = f" (or {many} of {mine.support}, whichever is more)"
    # A hair of slack so a figure exactly at the tolerance passes despite float round-off.
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
    """A warning when the figure fell at each of the last ``decline_generations`` steps."""
    steps = tolerances.decline_generations
    series = [*history[-steps:], candidate] if len(history) >= steps else []
    if not series or any(name not in e.figures for e in series):
        return None
    figures = [e.figures[name] for e in series]
    for before, after in itertools.pairwise(figures):
        step = relative_loss(before.value, after.value, after.greater_is_better)
        if step <= 0 or step < tolerances.decline_step * tolerances.relative(name, after.kind):
            return None
    trail = " → ".join(_num(f.value) for f in figures)
    return (
        f"{_capital(figures[-1].title)} has fallen {steps} generations in a row ({trail}), each "
        "time inside tolerance; a slow steady decline is how collapse starts."
    )


def _incomparable(candidate: Evaluation, reference: Evaluation) -> str:
    differ = [
        key
        for key in _COMPARABLE_DETAILS
        if key in candidate.details
        and key in reference.details
        and _detail(key, candidate.details[key]) != _detail(key, reference.details[key])
    ]
    return ", ".join(differ).replace("_", " ")


def _detail(key: str, value: Any) -> Any:
    # The tail is a set of niches listed by count: new human examples can reorder two tail
    # niches without changing the tail, and a reference evaluated before they arrived is kept
    # (worker/evaluation.py caches by the set), so the order must not count.
    return sorted(value) if key == "tail_niches" and isinstance(value, list) else value


def _percent(share: float) -> str:
    value = 100 * share
    return f"{value:.1f}%" if 0 < abs(value) < 10 and value != round(value) else f"{value:.0f}%"


def _num(value: float) -> str:
    return f"{value:.3g}"


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def _optional_float(value: Any) -> float | None:
    return None if value is None else float(value)
