"""The evaluator: a suggestion model measured on the benchmark, for relevance, niche coverage
and diversity.

:class:`SuggestionEvaluator` is bound once to its benchmark, the tail niches and its
:class:`EvaluationConfig`, and knows the key its evaluations are cached under; calling it
with a model returns an :class:`~safeguards.metrics.Evaluation` (the shape of
sentence-transformers' ``SentenceEvaluator``, with a ``primary_metric``).

One ``suggest_many`` call over every benchmark message, at the depth the deepest metric
needs; every metric is then computed from those suggestions, so relevance and diversity
always describe the same outputs. Each text is encoded once: the gold replies and the
messages once per evaluator, the suggestions once per evaluation; the metric functions take
the embeddings. 1-of-100 (Henderson et al. 2019) ranks each gold reply among 99 others by
the plain encoder's cosine and, for a model that scores pairs, by the model's score. With an
everyday benchmark (safeguards.everyday), one more call over its labelled messages gives
tappable@3, inappropriate@3 and the rest, on what the model would show (its triggering
applied).

Example:
    >>> evaluator = SuggestionEvaluator(benchmark, encoder, niche_counts)  # doctest: +SKIP
    >>> evaluation = evaluator(model)  # doctest: +SKIP
    >>> evaluation.value(evaluator.primary_metric), evaluation.value("vendi")  # doctest: +SKIP
    (0.41, 87.2)
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np

from core.ranking import first_place_share
from core.ranking import pair_block
from core.ranking import ranking_batch
from core.ranking import ranking_columns
from core.settings import DEFAULT_SEED
from safeguards.coverage import DEFAULT_TAIL_SHARE
from safeguards.coverage import coverage
from safeguards.coverage import tail_niches
from safeguards.diversity import DEFAULT_VENDI_SAMPLE
from safeguards.diversity import diversity_metrics
from safeguards.everyday import EverydayBenchmark
from safeguards.everyday import score_lists
from safeguards.everyday import shown_lists
from safeguards.metrics import Evaluation
from safeguards.metrics import Metric
from safeguards.metrics import measurement_key
from safeguards.protocols import Suggester
from safeguards.protocols import TextEncoder
from safeguards.relevance import best_similarity
from safeguards.relevance import encode_ranked
from safeguards.relevance import first_match_ranks
from safeguards.relevance import gold_cosines
from safeguards.relevance import relevance_metrics


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
        depth: suggestions requested per message; MRR counts this deep (``mrr@depth``).
        ks: accuracy cut-offs (``accuracy@k``).
        primary: the relevance metric the gate protects: ``accuracy@k`` for a k in ``ks``,
            ``mrr@depth`` or ``similarity@diversity_k``.
        match_threshold: cosine at which a suggestion matches the gold reply.
        tail_share: the rarest share of niches that forms the tail.
        diversity_k: diversity and closeness are measured on the first this-many
            suggestions of each message, because that is what a user is shown.
        vendi_sample_size: suggestions the Vendi score is computed on (seeded subsample).
        seed: the subsample's seed.

    Raises:
        ValueError: cut-offs that do not fit the depth, or a primary metric not measured.
    """

    depth: int = 10
    ks: tuple[int, ...] = (1, 3)
    # The app shows three suggestions; how close the best of them comes to what the person
    # really replied is the continuous form of "one of them fits" (accuracy@3, reported too,
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
        allowed = [f"accuracy@{k}" for k in self.ks]
        allowed += [f"mrr@{self.depth}", f"similarity@{self.diversity_k}"]
        if self.primary not in allowed:
            raise ValueError(f"primary must be one of {allowed}, not {self.primary!r}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe, as an evaluation records it in ``details["config"]``."""
        return {**asdict(self), "ks": list(self.ks)}


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


class SuggestionEvaluator:
    """The benchmark, its tail niches, the encoder and the configuration bound once; call it
    with each model.

    Args:
        benchmark: the held-out human examples; never trained on.
        encoder: the base encoder, for semantic matches and suggestion embeddings.
        niche_counts: human examples per niche, which decides which niches are the tail
            (the rarest ``config.tail_share`` of the benchmark's niches).
        config: see :class:`EvaluationConfig`; its defaults when None.
        everyday: the labelled everyday messages (safeguards.everyday.load_everyday); each
            evaluation then has their metrics and ``details["everyday"]``. None leaves them
            out (an evaluation as made before they existed).

    Raises:
        ValueError: an empty benchmark.

    Example:
        >>> evaluator = SuggestionEvaluator(benchmark, encoder, counts)  # doctest: +SKIP
        >>> evaluator(candidate).value(evaluator.primary_metric)  # doctest: +SKIP
        0.41
    """

    def __init__(
        self,
        benchmark: Sequence[BenchmarkExample],
        encoder: TextEncoder,
        niche_counts: Mapping[str, int],
        config: EvaluationConfig | None = None,
        everyday: EverydayBenchmark | None = None,
    ) -> None:
        if not benchmark:
            raise ValueError("the benchmark is empty: there is nothing to evaluate on")
        self.benchmark = list(benchmark)
        self.encoder = encoder
        self.config = config or EvaluationConfig()
        self.niches = [example.niche for example in self.benchmark]
        self.tail = tail_niches(niche_counts, self.config.tail_share, among=set(self.niches))
        self.fingerprint = benchmark_fingerprint(self.benchmark)
        self.everyday = everyday

    @property
    def identity(self) -> dict[str, Any]:
        """What every evaluation of this evaluator records about how it was made
        (safeguards.metrics.COMPARABLE_DETAILS): what the gate requires to agree between two
        evaluations, and what the cache key is made of."""
        identity: dict[str, Any] = {
            "benchmark_fingerprint": self.fingerprint,
            "benchmark_size": len(self.benchmark),
            "tail_niches": list(self.tail),
            "config": self.config.to_dict(),
        }
        if self.everyday is not None:
            # An evaluation stored before the everyday benchmark (or on other labels) has
            # another cache key, so each model version is measured again once.
            identity["everyday_fingerprint"] = self.everyday.fingerprint
        return identity

    @property
    def primary_metric(self) -> str:
        return self.config.primary

    @property
    def cache_key(self) -> str:
        """The key an evaluation of this evaluator may be reused under: equal to that
        evaluation's ``Evaluation.cache_key`` (safeguards.metrics.measurement_key)."""
        return measurement_key(self.identity)

    @cached_property
    def gold_vectors(self) -> np.ndarray:
        """The gold replies' embeddings, ``(len(benchmark), dim)``: encoded on first use."""
        return self.encoder.encode([example.reply for example in self.benchmark])

    @cached_property
    def message_vectors(self) -> np.ndarray:
        """The benchmark messages' embeddings, ``(len(benchmark), dim)``: encoded on first use."""
        return self.encoder.encode([example.message for example in self.benchmark])

    def ranking(self, model: Suggester) -> dict[str, float]:
        """1-of-100 on the benchmark (Henderson et al. 2019, core.ranking): the plain
        encoder's (message . reply cosine) always, the model's when it scores pairs
        (``pair_scores(messages, replies, texts, columns) -> (n, batch)``, as SuggestionModel
        does), both on the same batches (core.ranking.ranking_columns).

        Returns:
            ``plain_one_of_100`` and ``one_of_100`` by name; empty for a benchmark of fewer
            than 2 messages. Fewer than 100 messages are ranked among all of them
            (``details["ranked_among"]`` says how many).
        """
        batch = ranking_batch(len(self.benchmark))
        if not batch:
            return {}
        columns = ranking_columns(len(self.benchmark), self.config.seed, batch)
        plain = pair_block(self.message_vectors, self.gold_vectors, columns)
        out = {"plain_one_of_100": first_place_share(plain)}
        pair_scores = getattr(model, "pair_scores", None)
        if callable(pair_scores):
            gold = [example.reply for example in self.benchmark]
            block = pair_scores(self.message_vectors, self.gold_vectors, gold, columns)
            out["one_of_100"] = first_place_share(np.asarray(block))
        return out

    def __call__(self, model: Suggester) -> Evaluation:
        """Relevance (overall, head niches), tail coverage and diversity of a model.

        Args:
            model: anything with ``suggest_many(messages, k=...)`` returning, per message,
                a list of objects with a ``text`` attribute (``SuggestionModel`` does). A
                model with a ``triggering`` attribute (``answers(suggestions) -> bool``) also
                gets ``coverage`` and ``answered_similarity@k``.

        Returns:
            An :class:`Evaluation` with primary ``config.primary``; ``suggestions`` holds each
            message's top-``depth`` texts and ``details`` the tail niches, per-niche metrics
            and sizes besides :attr:`identity`. With an everyday benchmark, its metrics
            (tappable@3, inappropriate@3, their sensitive forms, everyday coverage, intents
            and distinct suggestions) and ``details["everyday"]``: the counts and examples of
            inappropriate suggestions (safeguards.everyday.EverydayScores.summary).

        Raises:
            ValueError: the model answered another number of messages.
        """
        config = self.config
        raw = model.suggest_many([example.message for example in self.benchmark], k=config.depth)
        suggestions = [[s.text for s in row][: config.depth] for row in raw]
        if len(suggestions) != len(self.benchmark):
            raise ValueError(
                f"the model answered {len(suggestions)} of {len(self.benchmark)} messages"
            )

        vectors = encode_ranked(suggestions, self.encoder)
        cosines = gold_cosines(vectors, self.gold_vectors)
        gold = [example.reply for example in self.benchmark]
        ranks = first_match_ranks(suggestions, gold, cosines, config.match_threshold)
        overall = relevance_metrics(ranks, config.ks, config.depth)
        report = coverage(ranks, self.niches, self.tail, config.ks, config.depth)
        closeness = best_similarity(vectors, self.gold_vectors, config.diversity_k)
        niche_of = np.asarray(self.niches, dtype=object)
        in_tail = np.isin(niche_of, report.tail)
        similarity = f"similarity@{config.diversity_k}"
        overall[similarity] = float(closeness.mean())
        report.head_metrics[similarity] = (
            float(closeness[~in_tail].mean()) if (~in_tail).any() else 0.0
        )
        report.tail_metrics[similarity] = float(closeness[in_tail].mean()) if in_tail.any() else 0.0
        # Per niche too: accuracy is mostly 0 per niche on one-off replies, closeness is not,
        # so the dashboard's heat map shows something.
        for niche, row in report.per_niche.items():
            row[similarity] = float(closeness[niche_of == niche].mean())

        # Triggering (models.suggester.Triggering): the share of messages the model would
        # answer at all, and how relevant it is where it does. A model that answers fewer
        # messages serves fewer people, so the gate holds coverage like the primary metric.
        triggering = getattr(model, "triggering", None)
        if triggering is not None:
            answered = np.array([triggering.answers(row) for row in raw], dtype=bool)
            overall["coverage"] = float(answered.mean())
            overall[f"answered_{similarity}"] = (
                float(closeness[answered].mean()) if answered.any() else 0.0
            )

        # Ranking real replies, beside the plain encoder on the same batches (not gated).
        overall.update(self.ranking(model))

        shown = [row[: config.diversity_k] for row in suggestions]
        # The rows of the suggestions shown, from the same encoding (one block per message).
        shown_vectors = np.concatenate([block[: config.diversity_k] for block in vectors])
        diversity = diversity_metrics(shown, shown_vectors, config.vendi_sample_size, config.seed)

        size = len(self.benchmark)
        metrics = [Metric.measured(name, value, size) for name, value in overall.items()]
        for prefix, group, count in [
            ("head_", report.head_metrics, report.head_count),
            ("tail_", report.tail_metrics, report.tail_count),
        ]:
            metrics += [Metric.measured(prefix + name, v, count) for name, v in group.items()]
        flat = len(shown_vectors)
        vendi_support = flat
        if config.vendi_sample_size is not None:
            vendi_support = min(flat, config.vendi_sample_size)
        metrics += [
            Metric.measured(name, value, vendi_support if name == "vendi" else flat)
            for name, value in diversity.items()
        ]

        details = {
            **self.identity,
            "suggestions_shown": flat,
            "ranked_among": ranking_batch(len(self.benchmark)),
            "head_count": report.head_count,
            "tail_count": report.tail_count,
            "per_niche": report.per_niche,
        }
        if self.everyday is not None:
            scores = score_lists(self.everyday, shown_lists(model, self.everyday))
            metrics += scores.metrics()
            details["everyday"] = scores.summary()
        return Evaluation.of(metrics, config.primary, suggestions, details)
