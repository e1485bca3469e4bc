"""Named metrics: the registry of every metric name, the records an evaluation is made of,
and the one function that reads evaluations stored in older layouts.

In the spirit of sentence-transformers' ``SentenceEvaluator``, an evaluation is a set of
named metrics, each saying what kind of metric it is and whether greater is better, plus
which one is primary. Two evaluations then compare mechanically, and the promotion gate is a
plain comparison of two such records.

**The registry** (:data:`METRICS`, :data:`GROUPS`, :data:`KIND_TOLERANCES`) is the single
place where a metric name gets its kind, its plain-language label (what the dashboard, the
gate's reasons and ``replyguard models show`` print), its direction and its default gate
tolerance. Names follow the field:

- ``accuracy@k``: the share of benchmark messages with a suggestion matching the real reply
  among the top ``k`` (one gold reply per message, so this is a hit rate; information
  retrieval calls it success@k or accuracy@k, and recall@k only when there are several
  relevant items to recall).
- ``mrr@k``: mean reciprocal rank of the first matching suggestion, counting only the top
  ``k`` (the evaluation's depth, 10 by default).
- ``similarity@k``: mean cosine of the real reply and the closest of the top ``k``.
- ``one_of_100``: the share of benchmark messages whose real reply the model ranks first
  among 100 real replies (Henderson et al. 2019); ``plain_one_of_100`` the same for the plain
  encoder; ``held_out_`` in front: measured at training on the held-out tenth of training
  messages, where the model was chosen (models.selection).
- ``head_`` and ``tail_`` in front of a relevance metric: the same over the benchmark
  examples of the common and the rarest niches (``safeguards.coverage``).

Example:
    >>> ev = Evaluation.of([Metric.measured("accuracy@3", 0.42, 300)], primary="accuracy@3")
    >>> ev.metrics["accuracy@3"].label
    'A top-3 suggestion matches the real reply (accuracy@3)'
    >>> Evaluation.from_dict(ev.to_dict()) == ev
    True
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any
from typing import Literal
from typing import get_args

MetricKind = Literal["relevance", "diversity", "tail"]
KINDS: tuple[MetricKind, ...] = get_args(MetricKind)
# The layout of Evaluation.to_dict. 1 (or none): "figures", "recall@k" and "mrr" (cut at the
# evaluation's depth); 2: "metrics", "accuracy@k" and "mrr@k". upgrade_evaluation reads both.
SCHEMA_VERSION = 2


# ---------------------------------------------------------------------------------------
# The registry


# How the collapse experiment's report shows a metric (MetricSpec.collapse).
CollapseView = Literal["", "table", "plot", "plot by niche"]


@dataclass(frozen=True)
class MetricSpec:
    """What a metric name means.

    Args:
        name: the name, e.g. ``"vendi"``; a family measured at several cut-offs is written
            with ``@k`` (``"accuracy@k"``) and matches ``accuracy@1``, ``accuracy@3``, ...
        kind: relevance, diversity or tail (relevance over the rarest niches).
        label: plain-language name, lower case unless it starts with a proper name;
            ``{k}`` stands for the cut-off.
        greater_is_better: the direction in which the metric improves.
        gated: whether the gate holds the metric whatever the evaluation's primary metric
            is (the primary metric is always held).
        tolerance: the gate's default relative tolerance for this metric; None for its
            kind's (:data:`KIND_TOLERANCES`).
        by_niche: whether the metric is also measured per niche group (``head_``,
            ``tail_``): the held-out benchmark's relevance metrics are, the everyday
            benchmark's are not (it has no niches).
        collapse: how the collapse experiment's report (``replyguard simulate``) shows it:
            ``"table"``, a column of its per-generation tables; ``"plot"``, a chart too;
            ``"plot by niche"``, a chart and a column for the metric and for each niche
            group of it; ``""``, not at all.
    """

    name: str
    kind: MetricKind
    label: str
    greater_is_better: bool = True
    gated: bool = True
    tolerance: float | None = None
    by_niche: bool = True
    collapse: CollapseView = ""

    def at(self, name: str, k: str = "") -> MetricSpec:
        """This spec for one concrete name (``k`` filled into the label)."""
        return replace(self, name=name, label=self.label.format(k=k))


@dataclass(frozen=True)
class NicheGroup:
    """Relevance measured on part of the benchmark, named with a prefix
    (``tail_accuracy@3``): its label starts with ``who``, and it is of ``kind``."""

    prefix: str
    who: str
    kind: MetricKind
    gated: bool


# Default relative tolerances by kind: how far a metric may fall before the gate blocks. From
# the spread of eight retrains of the demo baseline that changed nothing (safeguards.gate's
# docstring): diversity 5% is a floor (distinct share and entropy alone would allow 1-4%),
# tail 10% (plus one benchmark example, see Tolerances.tail_examples), relevance 3%.
KIND_TOLERANCES: Mapping[MetricKind, float] = {"relevance": 0.03, "tail": 0.10, "diversity": 0.05}

METRICS: tuple[MetricSpec, ...] = (
    # Relevance: held by the gate only as the primary metric, except coverage (a model that
    # answers fewer messages serves fewer people, whatever its relevance where it answers).
    MetricSpec(
        "similarity@k",
        "relevance",
        "closeness of the best top-{k} suggestion to the real reply (mean cosine)",
        gated=False,
        collapse="plot by niche",
    ),
    MetricSpec(
        "accuracy@k",
        "relevance",
        "a top-{k} suggestion matches the real reply (accuracy@{k})",
        gated=False,
        collapse="table",
    ),
    MetricSpec(
        "mrr@k",
        "relevance",
        "how high the first matching suggestion ranks in the top {k} (MRR@{k})",
        gated=False,
    ),
    MetricSpec(
        "answered_similarity@k",
        "relevance",
        "closeness of the best top-{k} suggestion to the real reply, answered messages",
        gated=False,
    ),
    # The 1-of-100 ranking accuracy (Henderson et al. 2019, core.ranking): each real reply
    # ranked among 99 real replies of other messages by the model's score of the pair. Not
    # held by the gate: training already chose the model that ranks best on held-out data,
    # never below the plain encoder (models.selection); shown beside the plain encoder's.
    MetricSpec(
        "one_of_100",
        "relevance",
        "the real reply ranks first among 100 real replies (1-of-100)",
        gated=False,
    ),
    MetricSpec(
        "plain_one_of_100",
        "relevance",
        "the plain encoder, untrained: the real reply ranks first among 100 (1-of-100)",
        gated=False,
    ),
    MetricSpec(
        "held_out_one_of_100",
        "relevance",
        "held-out training messages: the real reply ranks first among 100 (1-of-100)",
        gated=False,
    ),
    MetricSpec(
        "held_out_plain_one_of_100",
        "relevance",
        "held-out training messages, the plain encoder: the real reply ranks first among 100 "
        "(1-of-100)",
        gated=False,
    ),
    # Coverage moves with the triggering threshold, a quantile of held-out scores: 1.6%
    # relative sd between two seeds on the 10,000-pair demo (docs/collapse.md "Noise"), so
    # 7% is 3 sd of a retrain's difference; the relevance kind's 3% was 1.3 sd and blocked
    # retrains that changed nothing.
    MetricSpec(
        "coverage",
        "relevance",
        "share of messages the model answers (coverage)",
        tolerance=0.07,
        collapse="plot",
    ),
    # The everyday benchmark (safeguards.everyday): what a person would tap among the
    # suggestions shown for labelled everyday messages, and what would be wrong to show.
    # Reported, not held by tolerance: the gate's own rule blocks any inappropriate
    # suggestion on a sensitive message (safeguards.gate, Tolerances.sensitive_rule).
    MetricSpec(
        "tappable@k",
        "relevance",
        "a top-{k} suggestion shown is one a person would tap, everyday messages (tappable@{k})",
        gated=False,
        by_niche=False,
    ),
    MetricSpec(
        "inappropriate@k",
        "relevance",
        "a top-{k} suggestion shown is a wrong reply, everyday messages (inappropriate@{k})",
        greater_is_better=False,
        gated=False,
        by_niche=False,
    ),
    MetricSpec(
        "sensitive_tappable@k",
        "relevance",
        "a top-{k} suggestion shown is one a person would tap, sensitive everyday messages "
        "(sensitive_tappable@{k})",
        gated=False,
        by_niche=False,
    ),
    MetricSpec(
        "sensitive_inappropriate@k",
        "relevance",
        "a top-{k} suggestion shown is a wrong reply, sensitive everyday messages "
        "(sensitive_inappropriate@{k})",
        greater_is_better=False,
        gated=False,
        by_niche=False,
    ),
    MetricSpec(
        "everyday_coverage",
        "relevance",
        "share of everyday messages the model answers (everyday coverage)",
        gated=False,
        by_niche=False,
    ),
    # Diversity: all held. The tolerances given here are for the metrics that move more
    # between retrains than the kind's 5% allows (3 sd of the difference of two retrains).
    MetricSpec(
        "distinct_1", "diversity", "Word variety (distinct-1)", tolerance=0.12, collapse="table"
    ),
    MetricSpec(
        "distinct_2", "diversity", "Phrase variety (distinct-2)", tolerance=0.11, collapse="plot"
    ),
    MetricSpec(
        "distinct_share", "diversity", "Suggestion variety (distinct share)", collapse="plot"
    ),
    MetricSpec("entropy", "diversity", "Spread of suggestions (entropy)", collapse="plot"),
    MetricSpec("entropy_norm", "diversity", "Spread of suggestions (normalised entropy)"),
    MetricSpec(
        "vendi",
        "diversity",
        "Effective number of different suggestions (Vendi score)",
        tolerance=0.07,
        collapse="plot",
    ),
    MetricSpec(
        "pairwise_distance",
        "diversity",
        "Difference between suggestions shown together (pairwise distance)",
        tolerance=0.07,
        collapse="table",
    ),
    # Of the everyday benchmark's suggestions: reported beside the held ones, not held.
    MetricSpec("everyday_intents", "diversity", "Intents served on everyday messages", gated=False),
    MetricSpec(
        "everyday_distinct",
        "diversity",
        "Different suggestions shown on everyday messages",
        gated=False,
    ),
)
GROUPS: tuple[NicheGroup, ...] = (
    NicheGroup("head_", "Common niches", "relevance", gated=False),
    # Rare niches are where collapse shows first: every tail metric is held.
    NicheGroup("tail_", "Rare niches", "tail", gated=True),
)
_BY_NAME = {spec.name: spec for spec in METRICS}


def metric_spec(name: str) -> MetricSpec | None:
    """The registry's entry for a concrete metric name, or None for a name it does not know.

    Args:
        name: e.g. ``"vendi"``, ``"accuracy@3"`` or ``"tail_mrr@10"``.

    Returns:
        A :class:`MetricSpec` with ``name`` as given and the label written out (capitalised,
        or after its niche group's ``who``), or None.

    Example:
        >>> metric_spec("tail_accuracy@1").label
        'Rare niches: a top-1 suggestion matches the real reply (accuracy@1)'
    """
    group = next((g for g in GROUPS if name.startswith(g.prefix)), None)
    base = name.removeprefix(group.prefix) if group else name
    family, at, k = base.partition("@")
    spec = _BY_NAME.get(f"{family}@k" if at else family)
    if spec is None or (at and not k.isdigit()):
        return None
    if group and (spec.kind != "relevance" or not spec.by_niche):
        return None
    found = spec.at(name, k)
    if group is None:
        return replace(found, label=found.label[:1].upper() + found.label[1:])
    return replace(found, kind=group.kind, gated=group.gated, label=f"{group.who}: {found.label}")


def metric_label(name: str) -> str:
    """The registry's label of a metric (see :func:`metric_spec`); the name itself for a
    name the registry does not know."""
    spec = metric_spec(name)
    return spec.label if spec is not None else name


def collapse_metrics(k: int, charted: bool = False) -> list[str]:
    """The metrics the collapse experiment's report shows (:attr:`MetricSpec.collapse`), in
    the registry's order: a ``@k`` family at cut-off ``k``, a ``"plot by niche"`` metric
    followed by its niche groups' (``head_``, ``tail_``).

    Args:
        k: the cut-off, e.g. 3 (the suggestions a user is shown).
        charted: only the metrics that get a chart; else every one of the tables.

    Returns:
        Concrete names, e.g. ``["similarity@3", "head_similarity@3", ...]``.
    """
    names: list[str] = []
    for spec in METRICS:
        if not spec.collapse or (charted and spec.collapse == "table"):
            continue
        name = spec.name.replace("@k", f"@{k}")
        names.append(name)
        if spec.collapse == "plot by niche":
            names += [group.prefix + name for group in GROUPS]
    return names


def default_tolerances() -> dict[str, float]:
    """The registry's per-metric tolerances (those that differ from their kind's), by name."""
    return {spec.name: spec.tolerance for spec in METRICS if spec.tolerance is not None}


def gated_by_default(name: str, kind: MetricKind) -> bool:
    """Whether the gate holds a metric that is not the primary one: the registry's word,
    else by kind (diversity and tail are held, relevance is not)."""
    spec = metric_spec(name)
    return spec.gated if spec is not None else kind != "relevance"


# ---------------------------------------------------------------------------------------
# The records


@dataclass(frozen=True)
class Metric:
    """One measured number.

    Args:
        name: a stable key, e.g. ``"accuracy@3"`` or ``"vendi"``.
        value: the measured value.
        kind: relevance, diversity or tail (relevance over the rarest niches).
        greater_is_better: the direction in which the metric improves.
        label: plain-language name for people reading a dashboard or a decision.
        support: how many benchmark examples (or suggestions) the metric was measured on;
            0 when unknown. The gate uses it to tell one example's swing from a real change.

    Raises:
        ValueError: an unknown kind, or a value that is not finite.
    """

    name: str
    value: float
    kind: MetricKind
    greater_is_better: bool = True
    label: str = ""
    support: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"metric {self.name!r}: kind must be one of {KINDS}, not {self.kind}")
        if not math.isfinite(self.value):
            # JSON has no NaN or infinity; a metric that cannot be measured must say so upstream.
            raise ValueError(f"metric {self.name!r}: value must be finite, not {self.value!r}")

    @classmethod
    def measured(cls, name: str, value: float, support: int) -> Metric:
        """A metric whose kind, direction and label come from the registry.

        Raises:
            KeyError: the registry does not know the name.
        """
        spec = metric_spec(name)
        if spec is None:
            raise KeyError(f"metric {name!r} is not in the registry (safeguards.metrics.METRICS)")
        return cls(name, float(value), spec.kind, spec.greater_is_better, spec.label, support)

    @property
    def title(self) -> str:
        return self.label or self.name

    def loss_against(self, reference: Metric) -> float:
        """Relative loss of this metric against a reference: positive means worse.

        Args:
            reference: the same metric measured on another model.

        Returns:
            ``(reference - self) / |reference|`` when greater is better (the sign flipped
            otherwise); 0.0 when both are zero, and infinity when the reference is zero and
            this metric is worse.
        """
        return relative_loss(reference.value, self.value, self.greater_is_better)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "value": self.value,
            "kind": self.kind,
            "greater_is_better": self.greater_is_better,
            "label": self.label,
            "support": self.support,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Metric:
        return cls(
            name=str(data["name"]),
            value=float(data["value"]),
            kind=data["kind"],
            greater_is_better=bool(data.get("greater_is_better", True)),
            label=str(data.get("label", "")),
            support=int(data.get("support", 0)),
        )


def relative_loss(reference: float, candidate: float, greater_is_better: bool = True) -> float:
    """How much worse ``candidate`` is than ``reference``, as a share of the reference.

    Args:
        reference: the value compared against.
        candidate: the new value.
        greater_is_better: the metric's direction.

    Returns:
        Positive when the candidate is worse (0.18 = 18% worse), negative when better.
    """
    worse_by = (reference - candidate) if greater_is_better else (candidate - reference)
    if reference == 0.0:
        if worse_by == 0.0:
            return 0.0
        return math.inf if worse_by > 0 else -math.inf
    return worse_by / abs(reference)


@dataclass(frozen=True)
class MetricChange:
    """One metric in two evaluations."""

    name: str
    kind: MetricKind
    reference: float
    candidate: float
    # Positive = the candidate is worse, as a share of the reference.
    relative_loss: float

    @property
    def worse(self) -> bool:
        return self.relative_loss > 0


# Evaluation details that say how an evaluation was measured: two evaluations are comparable,
# and a stored one may stand in for a new one, only when these agree.
# "everyday_fingerprint" is the everyday benchmark's (safeguards.everyday): absent from
# evaluations made before it, which comparable_details then leaves out.
COMPARABLE_DETAILS = (
    "benchmark_fingerprint",
    "benchmark_size",
    "tail_niches",
    "config",
    "everyday_fingerprint",
)


def comparable_details(details: Mapping[str, Any]) -> dict[str, Any]:
    """The details of :data:`COMPARABLE_DETAILS` that are present, the tail niches as a
    sorted list: the tail is a set listed by count, and new human examples can reorder two
    tail niches without changing the tail."""
    out = {key: details[key] for key in COMPARABLE_DETAILS if key in details}
    if isinstance(out.get("tail_niches"), list):
        out["tail_niches"] = sorted(out["tail_niches"])
    return out


def measurement_key(details: Mapping[str, Any]) -> str:
    """A hex SHA-256 digest of :func:`comparable_details`: equal for two evaluations made
    the same way (the evaluation cache's key)."""
    canonical = json.dumps(comparable_details(details), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass
class Evaluation:
    """Named metrics of one model on one benchmark, plus what produced them.

    Args:
        metrics: by name.
        primary: the name of the metric that summarises relevance (held by the gate).
        suggestions: optional per-benchmark-message suggestion texts, kept for display.
        details: free-form JSON-safe context (benchmark size, tail niches, sample sizes).

    Raises:
        ValueError: a metric stored under another name, or a primary that is not a metric.
    """

    metrics: dict[str, Metric]
    primary: str
    suggestions: list[list[str]] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for key, metric in self.metrics.items():
            if key != metric.name:
                raise ValueError(f"metric stored under {key!r} is named {metric.name!r}")
        if self.primary not in self.metrics:
            raise ValueError(f"primary metric {self.primary!r} is not among the metrics")

    @classmethod
    def of(
        cls,
        metrics: Sequence[Metric],
        primary: str,
        suggestions: list[list[str]] | None = None,
        details: dict[str, Any] | None = None,
    ) -> Evaluation:
        """Build from a list of metrics (names must be unique)."""
        by_name: dict[str, Metric] = {}
        for metric in metrics:
            if metric.name in by_name:
                raise ValueError(f"metric {metric.name!r} appears twice")
            by_name[metric.name] = metric
        return cls(by_name, primary, suggestions or [], details or {})

    @property
    def cache_key(self) -> str:
        """:func:`measurement_key` of the details: equal to the ``cache_key`` of the evaluator
        that made it (``safeguards.evaluator.SuggestionEvaluator``)."""
        return measurement_key(self.details)

    def value(self, name: str) -> float:
        return self.metrics[name].value

    def values(self) -> dict[str, float]:
        """A plain name -> value mapping (what a dashboard or a log line wants)."""
        return {name: metric.value for name, metric in self.metrics.items()}

    def of_kind(self, kind: MetricKind) -> list[Metric]:
        return [metric for metric in self.metrics.values() if metric.kind == kind]

    def compare(self, reference: Evaluation) -> dict[str, MetricChange]:
        """Every metric measured in both evaluations, with this one's loss against the other.

        Args:
            reference: the evaluation to compare against (production, or the baseline).

        Returns:
            By metric name; metrics missing from either side are left out.
        """
        changes: dict[str, MetricChange] = {}
        for name, metric in self.metrics.items():
            other = reference.metrics.get(name)
            if other is None:
                continue
            changes[name] = MetricChange(
                name, metric.kind, other.value, metric.value, metric.loss_against(other)
            )
        return changes

    def to_dict(self, include_suggestions: bool = True) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` reads it back unchanged."""
        data: dict[str, Any] = {
            "schema": SCHEMA_VERSION,
            "primary": self.primary,
            "metrics": [metric.to_dict() for metric in self.metrics.values()],
            "details": self.details,
        }
        if include_suggestions:
            data["suggestions"] = self.suggestions
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Evaluation:
        """Read a dict of :meth:`to_dict`, in this layout or an older one
        (:func:`upgrade_evaluation`).

        Raises:
            ValueError: a schema version this code does not know.
        """
        data = upgrade_evaluation(data)
        metrics = [Metric.from_dict(item) for item in data["metrics"]]
        suggestions = [list(map(str, row)) for row in data.get("suggestions", [])]
        return cls.of(metrics, str(data["primary"]), suggestions, dict(data.get("details", {})))


# ---------------------------------------------------------------------------------------
# Stored evaluations in older layouts

# An old name: an optional niche group, then recall@k or a bare mrr.
_OLD_NAME = re.compile(r"^(?P<group>head_|tail_)?(?:recall@(?P<k>\d+)|(?P<mrr>mrr))$")
# What an evaluation without a recorded depth was measured at (EvaluationConfig's default).
OLD_DEPTH = 10


def is_current(data: Mapping[str, Any], what: str) -> bool:
    """Whether a stored record (an evaluation, a decision) is in schema :data:`SCHEMA_VERSION`
    (True) or in schema 1, the one before today's names (False; no ``"schema"`` key is 1).

    Raises:
        ValueError: a schema version this code does not know, naming ``what`` it is.
    """
    schema = data.get("schema", 1)
    if schema not in (1, SCHEMA_VERSION):
        raise ValueError(f"{what} schema {schema!r} is not supported ({SCHEMA_VERSION})")
    return bool(schema == SCHEMA_VERSION)


def upgrade_evaluation(data: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluation dict in the current layout, whatever layout it was stored in.

    Schema 1 (or no ``schema`` key, before it was recorded) kept the metrics under
    ``"figures"`` and named the hit rate ``recall@k`` and the mean reciprocal rank ``mrr``
    (cut at the evaluation's depth, ``details.config.depth``). Renamed here: the metrics,
    the primary, the configured primary and the per-niche rows; labels, kinds and directions
    of known metrics are refreshed from the registry. Values and every other key are kept,
    so an old evaluation compares with a new one made the same way (same
    :func:`measurement_key`).

    Args:
        data: a stored ``Evaluation.to_dict()``, possibly with extra keys (a generation
            stores each role's with its ``version``).

    Returns:
        A new dict in schema :data:`SCHEMA_VERSION`; one already current comes back as a
        shallow copy.

    Raises:
        ValueError: a schema version this code does not know.
    """
    if is_current(data, "evaluation"):
        return dict(data)
    details = dict(data.get("details", {}))
    config = dict(details.get("config", {}))
    depth = int(config.get("depth", OLD_DEPTH))

    def renamed(name: str) -> str:
        return rename_metric(name, depth)

    metrics = []
    for item in data["figures"]:
        metric = {**item, "name": renamed(str(item["name"]))}
        spec = metric_spec(metric["name"])
        if spec is not None:
            metric.update(
                kind=spec.kind, greater_is_better=spec.greater_is_better, label=spec.label
            )
        metrics.append(metric)
    if "primary" in config:
        config["primary"] = renamed(str(config["primary"]))
        details["config"] = config
    if isinstance(details.get("per_niche"), Mapping):
        details["per_niche"] = {
            niche: {renamed(name): value for name, value in row.items()}
            for niche, row in details["per_niche"].items()
        }
    upgraded = {key: value for key, value in data.items() if key != "figures"}
    upgraded.update(
        schema=SCHEMA_VERSION,
        primary=renamed(str(data["primary"])),
        metrics=metrics,
        details=details,
    )
    return upgraded


def rename_metric(name: str, depth: int = OLD_DEPTH) -> str:
    """A metric name of schema 1 under its current name (``recall@3`` -> ``accuracy@3``,
    ``tail_mrr`` -> ``tail_mrr@10``); other names unchanged.

    Args:
        name: the old name.
        depth: the evaluation's depth, the cut-off of its MRR.
    """
    match = _OLD_NAME.match(name)
    if match is None:
        return name
    group = match["group"] or ""
    return f"{group}mrr@{depth}" if match["mrr"] else f"{group}accuracy@{match['k']}"
