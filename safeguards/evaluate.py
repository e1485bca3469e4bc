"""Evaluate a suggestion model on the benchmark: relevance, niche coverage and diversity.

One ``suggest_many`` call over every benchmark message, at the depth the deepest figure
needs; every figure is then computed from those suggestions, so relevance and diversity
always describe the same outputs.

Example:
    >>> evaluation = evaluate_model(model, benchmark, encoder, niche_counts)  # doctest: +SKIP
    >>> evaluation.value("recall@3"), evaluation.value("vendi")  # doctest: +SKIP
    (0.41, 87.2)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass

import numpy as np

from core.settings import DEFAULT_SEED
from safeguards.coverage import DEFAULT_TAIL_SHARE
from safeguards.coverage import coverage
from safeguards.diversity import DEFAULT_VENDI_SAMPLE
from safeguards.diversity import diversity_figures
from safeguards.evaluation import Evaluation
from safeguards.evaluation import Figure
from safeguards.evaluation import FigureKind
from safeguards.evaluation import Suggester
from safeguards.evaluation import TextEncoder
from safeguards.relevance import best_similarity
from safeguards.relevance import first_match_ranks
from safeguards.relevance import relevance_figures

# Plain-language names for the dashboard and for the gate's reasons.
DIVERSITY_LABELS = {
    "distinct_1": "Word variety (distinct-1)",
    "distinct_2": "Phrase variety (distinct-2)",
    "distinct_share": "Suggestion variety (distinct share)",
    "entropy": "Spread of suggestions (entropy)",
    "entropy_norm": "Spread of suggestions (normalised entropy)",
    "vendi": "Effective number of different suggestions (Vendi score)",
    "pairwise_distance": "Difference between suggestions shown together (pairwise distance)",
}


def _relevance_label(name: str) -> str:
    if name == "coverage":
        return "share of messages the model answers (coverage)"
    if name.startswith("answered_similarity@"):
        k = name.removeprefix("answered_similarity@")
        return f"closeness of the best top-{k} suggestion to the real reply, answered messages"
    if name.startswith("similarity@"):
        k = name.removeprefix("similarity@")
        return f"closeness of the best top-{k} suggestion to the real reply (mean cosine)"
    if name == "mrr":
        return "how high the first matching suggestion ranks (MRR)"
    k = name.removeprefix("recall@")
    if k == "1":
        return "top suggestion matches the real reply (recall@1)"
    return f"a top-{k} suggestion matches the real reply (recall@{k})"


@dataclass(frozen=True)
class BenchmarkExample:
    """One held-out human example: a message, the reply a person gave, and its niche."""

    message: str
    reply: str
    niche: str


@dataclass(frozen=True)
class EvaluationConfig:
    """How a model is evaluated.

    Args:
        depth: suggestions requested per message; MRR looks this deep.
        ks: recall cut-offs.
        primary: the relevance figure the gate protects (``recall@k`` or ``mrr``).
        match_threshold: cosine at which a suggestion matches the gold reply.
        tail_share: the rarest share of niches that forms the tail.
        diversity_k: diversity is measured on the first this-many suggestions of each
            message, because that is what a user is shown.
        vendi_sample_size: suggestions the Vendi score is computed on (seeded subsample).
        seed: the subsample's seed.
    """

    depth: int = 10
    ks: tuple[int, ...] = (1, 3)
    # The app shows three suggestions; how close the best of them comes to what the person
    # really replied is the continuous form of "one of them fits" (recall@3, reported too,
    # moves in steps of a whole benchmark example).
    primary: str = "similarity@3"
    match_threshold: float = 0.8
    tail_share: float = DEFAULT_TAIL_SHARE
    diversity_k: int = 3
    vendi_sample_size: int | None = DEFAULT_VENDI_SAMPLE
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not self.ks or min(self.ks) < 1:
            raise ValueError(f"ks must be positive cut-offs, not {self.ks}")
        if self.depth < max(self.ks):
            raise ValueError(f"depth {self.depth} is below the largest cut-off {max(self.ks)}")
        if not 1 <= self.diversity_k <= self.depth:
            raise ValueError(f"diversity_k must be between 1 and depth, not {self.diversity_k}")
        allowed = [f"recall@{k}" for k in self.ks] + ["mrr", f"similarity@{self.diversity_k}"]
        if self.primary not in allowed:
            raise ValueError(f"primary must be one of {allowed}, not {self.primary!r}")


def evaluate_model(
    model: Suggester,
    benchmark: Sequence[BenchmarkExample],
    encoder: TextEncoder,
    niche_counts: Mapping[str, int],
    config: EvaluationConfig | None = None,
) -> Evaluation:
    """Relevance (overall, head niches), tail coverage and diversity of a model.

    Args:
        model: anything with ``suggest_many(messages, k=...)`` returning, per message, a
            list of objects with a ``text`` attribute (``SuggestionModel`` does). A model
            with a ``triggering`` attribute (``answers(suggestions) -> bool``) also gets
            ``coverage`` and ``answered_similarity@k``.
        benchmark: the held-out human examples; never trained on.
        encoder: the base encoder; used for semantic matches and suggestion embeddings.
        niche_counts: human examples per niche, which decides which niches are the tail.
        config: see :class:`EvaluationConfig`.

    Returns:
        An :class:`Evaluation` with primary ``config.primary``; ``suggestions`` holds each
        message's top-``depth`` texts and ``details`` the tail niches, per-niche figures
        and sizes.
    """
    config = config or EvaluationConfig()
    if not benchmark:
        raise ValueError("the benchmark is empty: there is nothing to evaluate on")
    messages = [example.message for example in benchmark]
    gold = [example.reply for example in benchmark]
    niches = [example.niche for example in benchmark]

    raw = model.suggest_many(messages, k=config.depth)
    suggestions = [[s.text for s in row][: config.depth] for row in raw]
    if len(suggestions) != len(benchmark):
        raise ValueError(f"the model answered {len(suggestions)} of {len(benchmark)} messages")

    ranks = first_match_ranks(suggestions, gold, encoder, config.match_threshold)
    overall = relevance_figures(ranks, config.ks)
    report = coverage(ranks, niches, niche_counts, config.ks, config.tail_share)
    closeness = best_similarity(suggestions, gold, encoder, config.diversity_k)
    in_tail = np.isin(np.asarray(niches, dtype=object), report.tail)
    similarity = f"similarity@{config.diversity_k}"
    overall[similarity] = float(closeness.mean())
    report.head_figures[similarity] = float(closeness[~in_tail].mean()) if (~in_tail).any() else 0.0
    report.tail_figures[similarity] = float(closeness[in_tail].mean()) if in_tail.any() else 0.0
    # Per niche too: recall is mostly 0 per niche on one-off replies, closeness is not, so the
    # dashboard's heat map shows something.
    niche_of = np.asarray(niches, dtype=object)
    for niche, row in report.per_niche.items():
        row[similarity] = float(closeness[niche_of == niche].mean())

    # Triggering (models.suggester.Triggering): the share of messages the model would answer
    # at all, and how relevant it is where it does. A model that answers fewer messages
    # serves fewer people, so the gate holds coverage like the primary relevance figure.
    triggering = getattr(model, "triggering", None)
    if triggering is not None:
        answered = np.array([triggering.answers(row) for row in raw], dtype=bool)
        overall["coverage"] = float(answered.mean())
        overall[f"answered_{similarity}"] = (
            float(closeness[answered].mean()) if answered.any() else 0.0
        )

    shown = [row[: config.diversity_k] for row in suggestions]
    flat = [text for row in shown for text in row]
    embeddings = encoder.encode(flat)
    diversity = diversity_figures(shown, embeddings, config.vendi_sample_size, config.seed)

    figures: list[Figure] = []

    def add(group: dict[str, float], prefix: str, kind: FigureKind, who: str, n: int) -> None:
        for name, value in group.items():
            label = _relevance_label(name)
            label = f"{who}: {label}" if who else label[0].upper() + label[1:]
            figures.append(Figure(prefix + name, value, kind, True, label, n))

    add(overall, "", "relevance", "", len(benchmark))
    add(report.head_figures, "head_", "relevance", "Common niches", report.head_count)
    add(report.tail_figures, "tail_", "tail", "Rare niches", report.tail_count)
    vendi_support = len(flat)
    if config.vendi_sample_size is not None:
        vendi_support = min(vendi_support, config.vendi_sample_size)
    for name, value in diversity.items():
        support = vendi_support if name == "vendi" else len(flat)
        figures.append(Figure(name, value, "diversity", True, DIVERSITY_LABELS[name], support))

    details = {
        "benchmark_fingerprint": benchmark_fingerprint(benchmark),
        "benchmark_size": len(benchmark),
        "suggestions_shown": len(flat),
        "tail_niches": report.tail,
        "head_count": report.head_count,
        "tail_count": report.tail_count,
        "per_niche": report.per_niche,
        "config": {**asdict(config), "ks": list(config.ks)},
    }
    return Evaluation.of(figures, config.primary, suggestions, details)


def benchmark_fingerprint(benchmark: Sequence[BenchmarkExample]) -> str:
    """A hash of the benchmark's content, so evaluations on different benchmarks are told
    apart (the gate refuses to compare them).

    Args:
        benchmark: the held-out examples, in order.

    Returns:
        A hex SHA-256 digest.
    """
    digest = hashlib.sha256()
    for example in benchmark:
        digest.update("\x1f".join((example.message, example.reply, example.niche)).encode())
        digest.update(b"\x1e")
    return digest.hexdigest()


class SafeguardEvaluator:
    """The benchmark, encoder and niche counts bound once; call it with each model.

    Args:
        benchmark: the held-out human examples.
        encoder: the base encoder.
        niche_counts: human examples per niche.
        config: see :class:`EvaluationConfig`.

    Example:
        >>> evaluator = SafeguardEvaluator(benchmark, encoder, counts)  # doctest: +SKIP
        >>> evaluator(candidate).primary_figure.value  # doctest: +SKIP
        0.41
    """

    def __init__(
        self,
        benchmark: Sequence[BenchmarkExample],
        encoder: TextEncoder,
        niche_counts: Mapping[str, int],
        config: EvaluationConfig | None = None,
    ) -> None:
        self.benchmark = list(benchmark)
        self.encoder = encoder
        self.niche_counts = dict(niche_counts)
        self.config = config or EvaluationConfig()

    @property
    def primary(self) -> str:
        return self.config.primary

    def __call__(self, model: Suggester) -> Evaluation:
        return evaluate_model(model, self.benchmark, self.encoder, self.niche_counts, self.config)
