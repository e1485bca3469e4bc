from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from safeguards.metrics import COMPARABLE_DETAILS
from safeguards.metrics import KIND_TOLERANCES
from safeguards.metrics import SCHEMA_VERSION
from safeguards.metrics import Evaluation
from safeguards.metrics import Metric
from safeguards.metrics import default_tolerances
from safeguards.metrics import measurement_key
from safeguards.metrics import metric_label
from safeguards.metrics import metric_spec
from safeguards.metrics import relative_loss
from safeguards.metrics import upgrade_evaluation


def sample() -> Evaluation:
    return Evaluation.of(
        [
            Metric("accuracy@3", 0.5, "relevance", True, "a top-3 suggestion matches", 300),
            Metric("vendi", 30.0, "diversity", True, "Vendi", 500),
            Metric("tail_mrr@10", 0.2, "tail", True, "Rare niches: MRR", 12),
            Metric("latency", 2.0, "relevance", greater_is_better=False),
        ],
        primary="accuracy@3",
        suggestions=[["hi", "hello"], ["bye"]],
        details={"benchmark_size": 2, "tail_niches": ["rare"]},
    )


def test_an_evaluation_survives_a_trip_through_json() -> None:
    original = sample()
    restored = Evaluation.from_dict(json.loads(json.dumps(original.to_dict())))
    assert restored == original
    assert restored.value(restored.primary) == 0.5
    assert restored.suggestions == [["hi", "hello"], ["bye"]]


def test_suggestions_can_be_left_out_of_the_dict() -> None:
    data = sample().to_dict(include_suggestions=False)
    assert "suggestions" not in data
    assert Evaluation.from_dict(data).suggestions == []


def test_compare_gives_the_relative_loss_in_each_metrics_direction() -> None:
    reference = sample()
    candidate = Evaluation.of(
        [
            Metric("accuracy@3", 0.4, "relevance"),
            Metric("vendi", 33.0, "diversity"),
            Metric("latency", 3.0, "relevance", greater_is_better=False),
            Metric("new_metric", 1.0, "diversity"),
        ],
        primary="accuracy@3",
    )
    changes = candidate.compare(reference)
    # Metrics missing on either side are not compared.
    assert set(changes) == {"accuracy@3", "vendi", "latency"}
    assert changes["accuracy@3"].relative_loss == pytest.approx(0.2)  # (0.5 - 0.4) / 0.5
    assert changes["accuracy@3"].worse
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
def test_a_metric_refuses_what_json_or_the_gate_cannot_use(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Metric(**kwargs)


def test_an_evaluation_needs_its_primary_metric_and_unique_names() -> None:
    with pytest.raises(ValueError, match="primary"):
        Evaluation.of([Metric("vendi", 1.0, "diversity")], primary="accuracy@3")
    with pytest.raises(ValueError, match="twice"):
        Evaluation.of([Metric("vendi", 1.0, "diversity")] * 2, primary="vendi")


def test_an_unknown_schema_version_is_refused() -> None:
    data = sample().to_dict()
    data["schema"] = 99
    with pytest.raises(ValueError, match="schema"):
        Evaluation.from_dict(data)


STORED = Path(__file__).parent / "data" / "stored-before-schema-2.json"


def stored_before_schema_2() -> dict:
    return json.loads(STORED.read_text())["evaluation"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("schema", [None, 1])
def test_an_evaluation_stored_before_schema_2_reads_under_the_current_names(
    schema: int | None,
) -> None:
    old = stored_before_schema_2()
    if schema is not None:
        old["schema"] = schema
    evaluation = Evaluation.from_dict(old)
    values = {m["name"]: m["value"] for m in old["figures"]}
    renamed = {
        "recall@1": "accuracy@1",
        "recall@3": "accuracy@3",
        "mrr": "mrr@10",
        "head_recall@3": "head_accuracy@3",
        "head_mrr": "head_mrr@10",
        "tail_recall@1": "tail_accuracy@1",
        "tail_mrr": "tail_mrr@10",
        "similarity@3": "similarity@3",
        "vendi": "vendi",
    }
    for before, after in renamed.items():
        assert evaluation.value(after) == values[before]
    assert not [name for name in evaluation.metrics if "recall" in name or name.endswith("mrr")]
    assert len(evaluation.metrics) == len(values)
    assert evaluation.primary == "similarity@3"
    # Labels (what the dashboard and the gate's reasons print) come from the registry.
    assert evaluation.metrics["tail_mrr@10"].label == metric_spec("tail_mrr@10").label  # type: ignore[union-attr]
    assert evaluation.metrics["accuracy@1"].label.endswith("(accuracy@1)")
    assert evaluation.details["per_niche"]["food"] == {
        "accuracy@1": 0.3333,
        "accuracy@3": 0.3333,
        "mrr@10": 0.3333,
        "count": 3.0,
        "similarity@3": 0.64,
    }
    assert evaluation.suggestions == [["sure", "ok", "no thanks"]]
    # Written back in the current layout, it reads the same.
    current = evaluation.to_dict()
    assert current["schema"] == SCHEMA_VERSION and "figures" not in current
    assert Evaluation.from_dict(current) == evaluation
    # The stored dict itself is left as it was.
    assert old["figures"][0]["name"] == "recall@1"


def test_an_old_primary_and_depth_are_renamed_with_the_metrics() -> None:
    old = stored_before_schema_2()
    old["primary"] = "mrr"
    old["details"]["config"].update(primary="mrr", depth=5)
    upgraded = upgrade_evaluation(old)
    assert upgraded["primary"] == "mrr@5"
    assert upgraded["details"]["config"]["primary"] == "mrr@5"
    assert "tail_mrr@5" in {m["name"] for m in upgraded["metrics"]}
    assert upgrade_evaluation(upgraded) == upgraded


def test_an_upgraded_evaluation_has_the_cache_key_of_one_made_the_same_way_now() -> None:
    old = stored_before_schema_2()
    details = Evaluation.from_dict(old).details
    # What a SuggestionEvaluator without an everyday benchmark records today: the same
    # details, the tail in another order (an old evaluation has no everyday fingerprint).
    assert "everyday_fingerprint" in COMPARABLE_DETAILS
    assert "everyday_fingerprint" not in details
    made_now = {
        **{k: details[k] for k in COMPARABLE_DETAILS if k != "everyday_fingerprint"},
        "tail_niches": ["pets", "weather"],
    }
    assert measurement_key(made_now) == Evaluation.from_dict(old).cache_key
    # One measured with the everyday benchmark is another measurement: measured again.
    with_everyday = {**made_now, "everyday_fingerprint": "ab" * 32}
    assert measurement_key(with_everyday) != Evaluation.from_dict(old).cache_key
    other_config = {**made_now, "config": {**details["config"], "match_threshold": 0.7}}
    assert measurement_key(other_config) != Evaluation.from_dict(old).cache_key


@pytest.mark.parametrize(
    ("name", "kind", "label", "gated"),
    [
        (
            "accuracy@1",
            "relevance",
            "A top-1 suggestion matches the real reply (accuracy@1)",
            False,
        ),
        (
            "mrr@10",
            "relevance",
            "How high the first matching suggestion ranks in the top 10 (MRR@10)",
            False,
        ),
        ("coverage", "relevance", "Share of messages the model answers (coverage)", True),
        (
            "head_similarity@3",
            "relevance",
            "Common niches: closeness of the best top-3 suggestion to the real reply (mean cosine)",
            False,
        ),
        (
            "tail_accuracy@3",
            "tail",
            "Rare niches: a top-3 suggestion matches the real reply (accuracy@3)",
            True,
        ),
        ("vendi", "diversity", "Effective number of different suggestions (Vendi score)", True),
    ],
)
def test_the_registry_names_kinds_labels_and_gating(
    name: str, kind: str, label: str, gated: bool
) -> None:
    spec = metric_spec(name)
    assert spec is not None
    assert (spec.name, spec.kind, spec.label, spec.gated) == (name, kind, label, gated)
    assert Metric.measured(name, 0.5, 10) == Metric(name, 0.5, spec.kind, True, label, 10)


@pytest.mark.parametrize("name", ["recall@3", "mrr", "accuracy@k", "tail_vendi", "latency"])
def test_names_the_registry_does_not_know(name: str) -> None:
    assert metric_spec(name) is None
    assert metric_label(name) == name
    with pytest.raises(KeyError, match="registry"):
        Metric.measured(name, 0.5, 10)


def test_the_registry_gives_the_gate_its_default_tolerances() -> None:
    assert default_tolerances() == {
        "coverage": 0.07,
        "distinct_1": 0.12,
        "distinct_2": 0.11,
        "vendi": 0.07,
        "pairwise_distance": 0.07,
    }
    assert KIND_TOLERANCES == {"relevance": 0.03, "tail": 0.10, "diversity": 0.05}
