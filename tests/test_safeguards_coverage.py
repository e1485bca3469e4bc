from __future__ import annotations

import numpy as np
import pytest

from safeguards.coverage import coverage
from safeguards.coverage import niche_relevance
from safeguards.coverage import tail_niches

COUNTS = {"a": 100, "b": 3, "c": 50, "d": 7, "e": 900}


@pytest.mark.parametrize(
    ("share", "expected"),
    [
        (0.2, ["b"]),  # a fifth of 5 niches = 1
        (0.4, ["b", "d"]),  # 2 niches, rarest first
        (0.1, ["b"]),  # 0.5 niches rounds down to 0, but the tail has at least one
        (1.0, ["b", "d", "c", "a", "e"]),
    ],
)
def test_tail_niches_are_the_rarest_share(share: float, expected: list[str]) -> None:
    assert tail_niches(COUNTS, share) == expected


def test_tail_niches_break_ties_by_name_and_count_missing_niches_as_zero() -> None:
    assert tail_niches({"y": 5, "x": 5, "z": 10}, 0.34) == ["x"]
    # "new" has no human example at all: the rarest of the benchmark's niches.
    assert tail_niches(COUNTS, 0.2, among={"a", "e", "new"}) == ["new"]


def test_tail_share_must_be_a_fraction() -> None:
    with pytest.raises(ValueError, match="share"):
        tail_niches(COUNTS, 0.0)


def test_tail_coverage_pools_the_tail_examples() -> None:
    # b: one example, matched at rank 1. d: three examples, none matched.
    # e: two examples, ranks 2 and 0.
    niches = ["b", "d", "d", "d", "e", "e"]
    ranks = np.array([1, 0, 0, 0, 2, 0])
    report = coverage(ranks, niches, tail_niches(COUNTS, 0.67, among=set(niches)), ks=(1, 3))
    # Three benchmark niches, 0.67 of 3 = 2.01 -> the 2 rarest: b (3) and d (7).
    assert report.tail == ["b", "d"]
    # Pooled over the 4 tail examples: 1 hit at rank 1 -> accuracy@1 = 1/4 (the mean of the
    # two niches' own accuracies would be (1 + 0) / 2 = 0.5).
    assert report.tail_metrics["accuracy@1"] == pytest.approx(0.25)
    assert report.tail_metrics["mrr@10"] == pytest.approx(0.25)
    assert report.tail_count == 4
    # Head: e only: ranks 2, 0 -> accuracy@1 0, accuracy@3 1/2, MRR (1/2 + 0) / 2 = 1/4.
    assert report.head_metrics == pytest.approx(
        {"accuracy@1": 0.0, "accuracy@3": 0.5, "mrr@10": 0.25}
    )
    assert report.head_count == 2
    assert report.per_niche["d"]["count"] == 3
    assert report.per_niche["b"]["accuracy@1"] == 1.0


def test_niche_relevance_needs_a_niche_per_rank() -> None:
    with pytest.raises(ValueError, match="niches"):
        niche_relevance(np.array([1, 0]), ["a"])
