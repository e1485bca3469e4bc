from __future__ import annotations

import json
import math

import pytest

from safeguards.evaluation import Evaluation
from safeguards.evaluation import Figure
from safeguards.evaluation import relative_loss


def sample() -> Evaluation:
    return Evaluation.of(
        [
            Figure("recall@3", 0.5, "relevance", True, "a top-3 suggestion matches", 300),
            Figure("vendi", 30.0, "diversity", True, "Vendi", 500),
            Figure("tail_mrr", 0.2, "tail", True, "Rare niches: MRR", 12),
            Figure("latency", 2.0, "relevance", greater_is_better=False),
        ],
        primary="recall@3",
        suggestions=[["hi", "hello"], ["bye"]],
        details={"benchmark_size": 2, "tail_niches": ["rare"]},
    )


def test_an_evaluation_survives_a_trip_through_json() -> None:
    original = sample()
    restored = Evaluation.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    assert restored.primary_figure.value == 0.5
    assert restored.suggestions == [["hi", "hello"], ["bye"]]


def test_suggestions_can_be_left_out_of_the_dict() -> None:
    data = sample().to_dict(include_suggestions=False)
    assert "suggestions" not in data
    assert Evaluation.from_dict(data).suggestions == []


def test_compare_gives_the_relative_loss_in_each_figures_direction() -> None:
    reference = sample()
    candidate = Evaluation.of(
        [
            Figure("recall@3", 0.4, "relevance"),
            Figure("vendi", 33.0, "diversity"),
            Figure("latency", 3.0, "relevance", greater_is_better=False),
            Figure("new_figure", 1.0, "diversity"),
        ],
        primary="recall@3",
    )
    changes = candidate.compare(reference)
    # Figures missing on either side are not compared.
    assert set(changes) == {"recall@3", "vendi", "latency"}
    assert changes["recall@3"].relative_loss == pytest.approx(0.2)  # (0.5 - 0.4) / 0.5
    assert changes["recall@3"].worse
    assert changes["vendi"].relative_loss == pytest.approx(-0.1)  # 3 better out of 30
    assert not changes["vendi"].worse
    assert changes["latency"].relative_loss == pytest.approx(0.5)  # lower is better: 2 -> 3


def test_relative_loss_against_zero() -> None:
    assert relative_loss(0.0, 0.0) == 0.0
    assert relative_loss(0.0, 0.1) == -math.inf
    assert relative_loss(0.0, 0.1, greater_is_better=False) == math.inf


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "x", "value": 1.0, "kind": "speed"}, "kind must be one of"),
        ({"name": "x", "value": math.nan, "kind": "diversity"}, "finite"),
    ],
)
def test_a_figure_refuses_what_json_or_the_gate_cannot_use(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Figure(**kwargs)


def test_an_evaluation_needs_its_primary_figure_and_unique_names() -> None:
    with pytest.raises(ValueError, match="primary"):
        Evaluation.of([Figure("vendi", 1.0, "diversity")], primary="recall@3")
    with pytest.raises(ValueError, match="twice"):
        Evaluation.of([Figure("vendi", 1.0, "diversity")] * 2, primary="vendi")


def test_an_unknown_schema_version_is_refused() -> None:
    data = sample().to_dict()
    data["schema"] = 99
    with pytest.raises(ValueError, match="schema"):
        Evaluation.from_dict(data)
