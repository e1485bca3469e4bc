from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pytest

from safeguards.evaluator import BenchmarkExample
from safeguards.evaluator import EvaluationConfig
from safeguards.evaluator import SuggestionEvaluator
from safeguards.metrics import Evaluation
from safeguards.protocols import Evaluator


class HashEncoder:
    """A random unit vector per distinct text: unrelated texts are far below a 0.8 match."""

    dim = 256

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.array(rows, dtype=np.float32).reshape(len(texts), self.dim)


@dataclass(frozen=True)
class Suggestion:
    text: str


class CannedModel:
    def __init__(self, answers: dict[str, list[str]]) -> None:
        self.answers = answers
        self.calls: list[tuple[list[str], int]] = []

    def suggest_many(self, messages: Sequence[str], k: int = 3) -> list[list[Suggestion]]:
        self.calls.append((list(messages), k))
        return [[Suggestion(t) for t in self.answers[m][:k]] for m in messages]


BENCHMARK = [
    BenchmarkExample("m0", "reply zero", "common"),
    BenchmarkExample("m1", "reply one", "common"),
    BenchmarkExample("m2", "reply two", "common"),
    BenchmarkExample("m3", "reply three", "common"),
    BenchmarkExample("m4", "reply four", "rare"),
    BenchmarkExample("m5", "reply five", "rare"),
]
ANSWERS = {
    "m0": ["reply zero", "alpha", "beta"],  # rank 1
    "m1": ["Reply  ONE", "alpha", "gamma"],  # rank 1 (equal once normalised)
    "m2": ["alpha", "reply two", "delta"],  # rank 2
    "m3": ["alpha", "beta", "gamma"],  # no match
    "m4": ["alpha", "beta", "reply four", "epsilon"],  # rank 3; "epsilon" is not shown
    "m5": ["beta", "gamma", "delta"],  # no match
}
COUNTS = {"common": 100, "rare": 2, "elsewhere": 1}


@pytest.fixture
def evaluation() -> Evaluation:
    return SuggestionEvaluator(BENCHMARK, HashEncoder(), COUNTS)(CannedModel(ANSWERS))


def test_relevance_overall_head_and_tail_by_hand(evaluation: Evaluation) -> None:
    # Ranks: 1, 1, 2, 0, 3, 0.
    # accuracy@1 = 2/6, accuracy@3 = 4/6, MRR = (1 + 1 + 1/2 + 0 + 1/3 + 0) / 6 = 17/36.
    assert evaluation.value("accuracy@1") == pytest.approx(2 / 6)
    assert evaluation.value("accuracy@3") == pytest.approx(4 / 6)
    assert evaluation.value("mrr@10") == pytest.approx(17 / 36)
    # Tail = the rarest fifth of the benchmark's 2 niches, at least one: "rare" ("elsewhere"
    # has no benchmark example, so it cannot be measured and is not chosen).
    assert evaluation.details["tail_niches"] == ["rare"]
    # Head (common): ranks 1, 1, 2, 0 -> accuracy@1 2/4, accuracy@3 3/4, MRR 2.5/4.
    assert evaluation.value("head_accuracy@1") == pytest.approx(0.5)
    assert evaluation.value("head_accuracy@3") == pytest.approx(0.75)
    assert evaluation.value("head_mrr@10") == pytest.approx(0.625)
    # Tail (rare): ranks 3, 0 -> accuracy@1 0, accuracy@3 1/2, MRR (1/3) / 2.
    assert evaluation.value("tail_accuracy@1") == 0.0
    assert evaluation.value("tail_accuracy@3") == pytest.approx(0.5)
    assert evaluation.value("tail_mrr@10") == pytest.approx(1 / 6)
    assert evaluation.metrics["tail_mrr@10"].support == 2


def test_per_niche_similarity_averages_to_the_overall_metric(evaluation: Evaluation) -> None:
    per_niche = evaluation.details["per_niche"]
    assert set(per_niche) == {"common", "rare"}
    weighted = sum(row["similarity@3"] * row["count"] for row in per_niche.values())
    assert weighted / 6 == pytest.approx(evaluation.value("similarity@3"))
    assert per_niche["rare"]["similarity@3"] == pytest.approx(evaluation.value("tail_similarity@3"))


def test_metric_kinds_and_primary(evaluation: Evaluation) -> None:
    kinds = {name: metric.kind for name, metric in evaluation.metrics.items()}
    assert kinds["accuracy@3"] == "relevance"
    assert kinds["head_mrr@10"] == "relevance"
    assert kinds["tail_accuracy@3"] == "tail"
    assert {f.name for f in evaluation.of_kind("diversity")} == {
        "distinct_1",
        "distinct_2",
        "distinct_share",
        "entropy",
        "entropy_norm",
        "vendi",
        "pairwise_distance",
    }
    assert kinds["similarity@3"] == "relevance"
    assert kinds["tail_similarity@3"] == "tail"
    assert evaluation.primary == "similarity@3"
    assert all(metric.label for metric in evaluation.metrics.values())


def test_diversity_is_measured_on_the_suggestions_a_user_sees(evaluation: Evaluation) -> None:
    # Top 3 of each message: 18 suggestions, 8 distinct texts (4 gold replies and alpha,
    # beta, gamma, delta; "epsilon" is 4th) -> 8/18. With the 4th it would be 9/19.
    assert evaluation.value("distinct_share") == pytest.approx(8 / 18)
    assert evaluation.metrics["distinct_share"].support == 18


def test_one_call_at_the_deepest_depth_and_suggestions_kept() -> None:
    model = CannedModel(ANSWERS)
    evaluation = SuggestionEvaluator(BENCHMARK, HashEncoder(), COUNTS, EvaluationConfig())(model)
    assert len(model.calls) == 1
    assert model.calls[0] == ([e.message for e in BENCHMARK], 10)
    assert evaluation.suggestions[4] == ["alpha", "beta", "reply four", "epsilon"]
    restored = Evaluation.from_dict(json.loads(json.dumps(evaluation.to_dict())))
    assert restored == evaluation


def test_the_evaluator_binds_the_benchmark_once() -> None:
    evaluator = SuggestionEvaluator(BENCHMARK, HashEncoder(), COUNTS)
    assert isinstance(evaluator, Evaluator)
    first = evaluator(CannedModel(ANSWERS))
    # Same benchmark, same model: the same record, fingerprint included.
    assert evaluator(CannedModel(ANSWERS)).to_dict() == first.to_dict()
    other = SuggestionEvaluator(BENCHMARK[:5], HashEncoder(), COUNTS)(CannedModel(ANSWERS))
    assert other.details["benchmark_fingerprint"] != first.details["benchmark_fingerprint"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"depth": 2}, "depth"),
        ({"primary": "accuracy@5"}, "primary"),
        ({"diversity_k": 0}, "diversity_k"),
    ],
)
def test_config_refuses_inconsistent_settings(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EvaluationConfig(**kwargs)


def test_an_empty_benchmark_is_refused() -> None:
    with pytest.raises(ValueError, match="empty"):
        SuggestionEvaluator([], HashEncoder(), COUNTS)


def test_best_similarity_takes_the_closest_of_the_shown_suggestions() -> None:
    from typing import ClassVar

    import numpy as np

    from safeguards.relevance import best_similarity
    from safeguards.relevance import encode_ranked

    class Axes:
        """Three orthogonal directions and one halfway between the first two."""

        dim = 3

        table: ClassVar[dict[str, list[float]]] = {
            "a": [1.0, 0.0, 0.0],
            "b": [0.0, 1.0, 0.0],
            "c": [0.0, 0.0, 1.0],
            "ab": [2**-0.5, 2**-0.5, 0.0],
        }

        def encode(self, texts: list[str]) -> np.ndarray:
            return np.array([self.table[t] for t in texts], dtype=np.float32)

    ranked = [["c", "ab", "a"], ["c", "b"], []]
    vectors, gold = encode_ranked(ranked, Axes()), Axes().encode(["a", "b", "a"])
    # Row 1 within k=2: c (0) and ab (cos 45 degrees = 0.7071) against gold "a" -> 0.7071;
    # with k=3 "a" itself is shown -> 1.0. Row 2: b against gold b -> 1.0. Row 3: nothing -> 0.
    assert best_similarity(vectors, gold, k=2) == pytest.approx([2**-0.5, 1.0, 0.0], abs=1e-6)
    assert best_similarity(vectors, gold, k=3) == pytest.approx([1.0, 1.0, 0.0], abs=1e-6)


class CountingEncoder(HashEncoder):
    """HashEncoder that records the texts of each ``encode`` call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return super().encode(texts)


def test_each_text_is_encoded_once_per_evaluation() -> None:
    encoder = CountingEncoder()
    evaluator = SuggestionEvaluator(BENCHMARK, encoder, COUNTS)
    assert encoder.calls == []  # binding the benchmark encodes nothing yet
    first = evaluator(CannedModel(ANSWERS))
    suggested = [text for e in BENCHMARK for text in ANSWERS[e.message]]
    # Every suggestion slot once for the model, the gold replies and the messages once for
    # the evaluator (the messages for the plain encoder's 1-of-100); relevance, closeness,
    # ranking and diversity are all computed from those three calls.
    messages = [e.message for e in BENCHMARK]
    assert encoder.calls == [suggested, [e.reply for e in BENCHMARK], messages]
    second = evaluator(CannedModel(ANSWERS))
    assert encoder.calls[3:] == [suggested]
    assert second == first


def test_the_evaluator_knows_the_cache_key_of_its_evaluations() -> None:
    evaluator = SuggestionEvaluator(BENCHMARK, HashEncoder(), COUNTS)
    assert evaluator.primary_metric == "similarity@3"
    evaluation = evaluator(CannedModel(ANSWERS))
    assert evaluator.cache_key == evaluation.cache_key
    assert evaluation.details["tail_niches"] == evaluator.tail == ["rare"]
    # Another way of measuring, or other tail niches, is another key.
    stricter = SuggestionEvaluator(
        BENCHMARK, HashEncoder(), COUNTS, EvaluationConfig(match_threshold=0.9)
    )
    assert stricter.cache_key != evaluator.cache_key
    common_rarer = SuggestionEvaluator(BENCHMARK, HashEncoder(), {"common": 1, "rare": 100})
    assert common_rarer.tail == ["common"]
    assert common_rarer.cache_key != evaluator.cache_key
