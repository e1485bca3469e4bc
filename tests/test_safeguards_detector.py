"""The comparison detector (rootiq-ai/model-collapse-detection's tiers) on hand-counted texts."""

from __future__ import annotations

import math

import pytest

from safeguards.detector import detector_metrics
from safeguards.detector import first_firing
from safeguards.detector import tokenize


def test_tokenizer_splits_on_punctuation_as_the_repository_does() -> None:
    assert tokenize("Don't go, OK?") == ["don", "t", "go", "ok"]


def test_metrics_of_a_small_panel() -> None:
    metrics = detector_metrics(["yes yes", "no thanks"], ["yes please", "no"])
    # Per text: "yes yes" 1/2, "no thanks" 2/2 -> mean 0.75; pooled: 3 of 4 tokens distinct.
    assert metrics["distinct_1"] == metrics["ttr"] == pytest.approx(0.75)
    assert metrics["distinct_1_pooled"] == pytest.approx(0.75)
    # Tokens yes, yes, no, thanks: p = 1/2, 1/4, 1/4 -> 1.5 bits.
    assert metrics["entropy"] == pytest.approx(1.5)
    # Reference vocabulary {yes, please, no}: two of three used.
    assert metrics["vocab_coverage"] == pytest.approx(2 / 3)


def test_nothing_to_count_gives_zeros() -> None:
    assert detector_metrics([], []) == {
        "distinct_1": 0.0,
        "distinct_1_pooled": 0.0,
        "ttr": 0.0,
        "entropy": 0.0,
        "vocab_coverage": 0.0,
    }


def test_a_tier_fires_at_the_first_drop_past_its_threshold() -> None:
    base = {"distinct_1": 1.0, "ttr": 1.0, "entropy": 4.0, "vocab_coverage": 0.5}
    series = [
        base,
        {**base, "entropy": 3.7},  # -7.5%: inside tier 1's 10%
        {**base, "entropy": 3.6, "vocab_coverage": 0.45},  # -10% exactly: fires
        {**base, "entropy": 3.0, "vocab_coverage": 0.4},  # coverage -20%: tier 3
    ]
    assert first_firing(series) == {"tier 1": (2, "entropy"), "tier 3": (3, "vocab_coverage")}
    assert first_firing(series[:2]) == {"tier 1": None, "tier 3": None}
    assert math.isclose(series[2]["entropy"], 4.0 * 0.9)
