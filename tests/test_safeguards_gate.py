from __future__ import annotations

import json
from pathlib import Path

import pytest

from safeguards.gate import Decision
from safeguards.gate import Tolerances
from safeguards.gate import decide
from safeguards.gate import upgrade_decision
from safeguards.gate import upgrade_generation
from safeguards.metrics import Evaluation
from safeguards.metrics import Metric

DIVERSITY = {
    "distinct_1",
    "distinct_2",
    "distinct_share",
    "entropy",
    "entropy_norm",
    "vendi",
    "pairwise_distance",
}
LABELS = {"distinct_share": "Suggestion variety (distinct share)"}
HEALTHY = {
    "accuracy@1": 0.30,
    "accuracy@3": 0.40,
    "mrr@10": 0.35,
    "head_accuracy@1": 0.32,
    "head_accuracy@3": 0.42,
    "head_mrr@10": 0.37,
    "tail_accuracy@1": 0.20,
    "tail_accuracy@3": 0.30,
    "tail_mrr@10": 0.25,
    "distinct_1": 0.12,
    "distinct_2": 0.28,
    "distinct_share": 0.36,
    "entropy": 4.4,
    "entropy_norm": 0.65,
    "vendi": 33.0,
    "pairwise_distance": 0.50,
}
DETAILS = {"benchmark_fingerprint": "abc", "benchmark_size": 300, "tail_niches": ["rare"]}


def evaluation(changes: dict[str, float] | None = None, **details: object) -> Evaluation:
    values = {**HEALTHY, **(changes or {})}
    metrics = []
    for name, value in values.items():
        if name in DIVERSITY:
            metrics.append(Metric(name, value, "diversity", True, LABELS.get(name, ""), 900))
        elif name.startswith("tail_"):
            # 20 tail benchmark examples: one example is 0.05 of accuracy.
            metrics.append(Metric(name, value, "tail", True, "", 20))
        else:
            metrics.append(Metric(name, value, "relevance", True, "", 300))
    return Evaluation.of(metrics, "accuracy@3", details={**DETAILS, **details})


BASELINE = evaluation()
PRODUCTION = evaluation({"accuracy@3": 0.41, "head_accuracy@3": 0.43})


def test_interchangeable_suggestions_are_blocked_even_as_common_niches_improve() -> None:
    candidate = evaluation(
        {
            # Relevance up, overall and on the common niches ...
            "accuracy@1": 0.33,
            "accuracy@3": 0.44,
            "head_accuracy@3": 0.47,
            # ... because every message now gets the same safe replies.
            "distinct_1": 0.06,
            "distinct_2": 0.12,
            "distinct_share": 0.12,
            "entropy": 2.9,
            "entropy_norm": 0.43,
            "vendi": 9.0,
            "pairwise_distance": 0.35,
        }
    )
    decision = decide(candidate, PRODUCTION, BASELINE, [BASELINE], None, fresh_human_examples=50)
    assert decision.verdict == "block"
    assert decision.metric("accuracy@3").verdict == "pass"
    assert decision.metric("distinct_share").verdict == "block"
    assert decision.metric("vendi").verdict == "block"
    assert any(
        r.startswith("Suggestion variety (distinct share) fell 67% below the clean baseline")
        for r in decision.reasons
    )


def test_a_candidate_that_lost_its_tail_niche_is_blocked() -> None:
    candidate = evaluation(
        {"tail_accuracy@1": 0.0, "tail_accuracy@3": 0.0, "tail_mrr@10": 0.0, "accuracy@3": 0.41}
    )
    decision = decide(candidate, PRODUCTION, BASELINE, [BASELINE], None, fresh_human_examples=50)
    assert decision.verdict == "block"
    assert decision.metric("tail_accuracy@3").verdict == "block"
    assert all(decision.metric(name).verdict == "pass" for name in DIVERSITY)
    assert any("fell 100% below the clean baseline" in r for r in decision.reasons)


def test_a_healthy_candidate_passes() -> None:
    candidate = evaluation({"accuracy@3": 0.42, "vendi": 34.0, "tail_accuracy@3": 0.30})
    decision = decide(candidate, PRODUCTION, BASELINE, [BASELINE], None, fresh_human_examples=50)
    assert decision.verdict == "pass"
    assert decision.reasons == (
        "Every diversity, rare-niche and relevance metric is within tolerance of the clean "
        "baseline and production.",
    )
    assert {f.verdict for f in decision.metrics} == {"pass"}


def test_a_slow_steady_decline_inside_tolerance_warns() -> None:
    # Each step falls ~1.4% (at least a quarter of the 5% tolerance), 2.8% in all: inside
    # tolerance against both the baseline and production, but falling two generations in a row.
    earlier = evaluation({"distinct_share": 0.36})
    production = evaluation({"distinct_share": 0.355})
    candidate = evaluation({"distinct_share": 0.35})
    decision = decide(candidate, production, BASELINE, [earlier, production], None, 50)
    assert decision.verdict == "warn"
    assert decision.metric("distinct_share").verdict == "warn"
    assert decision.reasons == (
        "Suggestion variety (distinct share) has fallen 2 generations in a row "
        "(0.36 → 0.355 → 0.35), each time inside tolerance; a slow steady decline is how "
        "collapse starts.",
    )
    # One fall is not a trend.
    flat = evaluation({"distinct_share": 0.355})
    assert decide(candidate, production, BASELINE, [flat, production], None, 50).verdict == "pass"


def test_jitter_smaller_than_a_quarter_of_the_tolerance_is_not_a_decline() -> None:
    history = [evaluation({"vendi": 33.0}), evaluation({"vendi": 32.8})]
    candidate = evaluation({"vendi": 32.6})  # steps of 0.6%, under 7% / 4 = 1.75%
    assert decide(candidate, history[-1], BASELINE, history, None, 50).verdict == "pass"


def test_no_fresh_human_data_warns() -> None:
    decision = decide(evaluation(), PRODUCTION, BASELINE, [BASELINE], None, fresh_human_examples=0)
    assert decision.verdict == "warn"
    assert decision.reasons[0].startswith("No new human-written examples arrived")


def test_relevance_below_production_beyond_tolerance_is_blocked() -> None:
    candidate = evaluation({"accuracy@3": 0.39})  # 4.9% below production's 0.41; tolerance 3%
    decision = decide(candidate, PRODUCTION, BASELINE, [], None, 50)
    assert decision.verdict == "block"
    assert decision.metric("accuracy@3").verdict == "block"
    assert decision.reasons == (
        "Accuracy@3 fell 4.9% below production (0.41 → 0.39); tolerance is 3%.",
    )
    # Head-niche relevance is reported, never judged.
    head = decide(evaluation({"head_accuracy@3": 0.1}), PRODUCTION, BASELINE, [], None, 50)
    assert head.verdict == "pass"
    assert head.metric("head_accuracy@3").tolerance is None


def test_without_production_the_baseline_is_the_only_reference() -> None:
    candidate = evaluation({"accuracy@3": 0.37, "distinct_share": 0.35})
    decision = decide(candidate, None, BASELINE, [], None, 50)
    assert decision.compared_with == ("the clean baseline",)
    assert decision.metric("distinct_share").production is None
    # accuracy@3 fell 7.5% below the baseline; with no production the baseline stands in.
    assert decision.metric("accuracy@3").verdict == "block"
    assert decision.metric("distinct_share").verdict == "pass"


def test_one_tail_example_is_inside_tolerance_two_are_not() -> None:
    one = evaluation({"tail_accuracy@3": 0.25})  # -1 of 20 examples: 16.7%, > 10% relative
    two = evaluation({"tail_accuracy@3": 0.20})  # -2 of 20
    assert decide(one, PRODUCTION, BASELINE, [], None, 50).verdict == "pass"
    blocked = decide(two, PRODUCTION, BASELINE, [], None, 50)
    assert blocked.verdict == "block"
    assert "or one benchmark example of 20" in blocked.metric("tail_accuracy@3").reasons[0]


def test_the_reason_reads_like_the_product_team_expects() -> None:
    baseline = evaluation({"distinct_share": 0.50})
    candidate = evaluation({"distinct_share": 0.41})
    decision = decide(candidate, None, baseline, [], None, 10)
    assert decision.reasons == (
        "Suggestion variety (distinct share) fell 18% below the clean baseline (0.5 → 0.41); "
        "tolerance is 5%.",
    )


def test_per_metric_tolerances_override_the_kind() -> None:
    candidate = evaluation({"distinct_share": 0.33})  # 8.3% below 0.36
    assert decide(candidate, None, BASELINE, [], None, 10).verdict == "block"
    loose = Tolerances(per_metric={"distinct_share": 0.10})
    assert decide(candidate, None, BASELINE, [], loose, 10).verdict == "pass"


def test_evaluations_of_different_benchmarks_are_not_compared() -> None:
    candidate = evaluation(benchmark_fingerprint="other")
    decision = decide(candidate, PRODUCTION, BASELINE, [], None, 50)
    assert decision.verdict == "block"
    assert any("benchmark fingerprint" in r for r in decision.reasons)


def test_the_same_tail_niches_listed_in_another_order_are_comparable() -> None:
    # New human examples reordered two tail niches by count; the tail is the same set.
    reference = evaluation(tail_niches=["rare", "rarer"])
    candidate = evaluation(tail_niches=["rarer", "rare"])
    assert decide(candidate, reference, reference, [], None, 50).verdict == "pass"
    other_tail = evaluation(tail_niches=["rare", "common"])
    decision = decide(other_tail, reference, reference, [], None, 50)
    assert decision.verdict == "block"
    assert any("tail niches differ" in r for r in decision.reasons)


def test_a_metric_missing_from_the_candidate_blocks() -> None:
    full = evaluation()
    metrics = {k: v for k, v in full.metrics.items() if k != "vendi"}
    candidate = Evaluation(metrics, "accuracy@3", details=dict(DETAILS))
    decision = decide(candidate, PRODUCTION, BASELINE, [], None, 50)
    assert decision.verdict == "block"
    assert decision.metric("vendi").candidate is None


def test_a_decision_is_a_json_record() -> None:
    candidate = evaluation({"distinct_share": 0.2})
    decision = decide(candidate, PRODUCTION, BASELINE, [BASELINE], Tolerances(), 0)
    restored = Decision.from_dict(json.loads(json.dumps(decision.to_dict())))
    assert restored == decision
    assert restored.to_dict()["metrics"][0]["name"] == "accuracy@1"


@pytest.mark.parametrize("bad", [{"diversity": 1.0}, {"tail": -0.1}, {"per_metric": {"x": 2.0}}])
def test_tolerances_must_be_fractions(bad: dict) -> None:
    with pytest.raises(ValueError, match="tolerance"):
        Tolerances(**bad)


def test_a_candidate_is_gated_against_references_stored_before_schema_2() -> None:
    stored = json.loads(
        (Path(__file__).parent / "data" / "stored-before-schema-2.json").read_text()
    )
    old = Evaluation.from_dict(stored["evaluation"])
    # A candidate measured now, the same way: current names, labels from the registry.

    def candidate(changes: dict[str, float]) -> Evaluation:
        values = {**old.values(), **changes}
        measured = [Metric.measured(n, v, old.metrics[n].support) for n, v in values.items()]
        return Evaluation.of(measured, "similarity@3", details=dict(old.details))

    same = decide(candidate({}), old, old, [old], None, fresh_human_examples=5)
    assert same.verdict == "pass"
    assert same.metric("tail_mrr@10").tolerance == pytest.approx(0.10)
    blander = decide(candidate({"distinct_share": 0.41}), old, old, [], None, 5)
    assert blander.verdict == "block"
    assert blander.reasons == tuple(
        f"Suggestion variety (distinct share) fell 18% below {who} (0.5 → 0.41); tolerance is 5%."
        for who in ("the clean baseline", "production")
    )


def test_a_decision_stored_before_schema_2_reads_under_the_current_names() -> None:
    stored = json.loads(
        (Path(__file__).parent / "data" / "stored-before-schema-2.json").read_text()
    )
    decision = Decision.from_dict(stored["decision"])
    assert [m.name for m in decision.metrics] == ["accuracy@3", "tail_mrr@10", "distinct_share"]
    assert decision.metric("accuracy@3").label.endswith("(accuracy@3)")
    assert decision.metric("distinct_share").verdict == "block"
    # The tolerances it was decided with, not today's defaults.
    assert decision.tolerances.per_metric == stored["decision"]["tolerances"]["per_figure"]
    assert decision.reasons == tuple(stored["decision"]["reasons"])
    upgraded = upgrade_decision(stored["decision"])
    assert upgraded["overridden_by"] == "reviewer"
    assert "per_figure" not in upgraded["tolerances"] and "figures" not in upgraded
    # A generation's evaluations say the MRR's cut-off; upgrade_generation passes it on.
    stored["evaluation"]["details"]["config"]["depth"] = 5
    metrics, decision_dict = upgrade_generation(
        {"candidate": stored["evaluation"]}, stored["decision"]
    )
    assert decision_dict["metrics"][1]["name"] == "tail_mrr@5"
    assert metrics["candidate"]["primary"] == "similarity@3"
    assert upgrade_generation({}, {}) == ({}, {})
