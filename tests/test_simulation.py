"""The collapse experiment on a small slice of the chatterbot data: the policies differ exactly
where they should, each generation labels new traffic, and the report is written."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.demo import chatterbot_rows
from tests.helpers import FAST_TRAINING
from webapp.cli import main

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("simulate")
    data = root / "slice.jsonl"
    taken: dict[str, int] = defaultdict(int)
    with data.open("w") as out:
        for _, e in chatterbot_rows():
            if taken[e.niche] < 15:
                taken[e.niche] += 1
                out.write(
                    json.dumps({"message": e.message, "reply": e.reply, "niche": e.niche}) + "\n"
                )
        # One bad row, skipped with --skip-invalid as `replyguard data import` skips it.
        out.write(json.dumps({"message": "no reply here"}) + "\n")
    bad_line = len(data.read_text().splitlines())
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--policy",
            "all",
            "--generations",
            "2",
            "--slice",
            "20",
            "--data",
            str(data),
            "--skip-invalid",
            "--out",
            str(root / "out"),
        ],
        # The tests' fast training (tests/helpers.py), support rule included: a slice of
        # one-off chatterbot replies would leave the response set empty at its default.
        env={
            f"REPLYGUARD_{name.upper()}": json.dumps(value) if isinstance(value, dict) else value
            for name, value in FAST_TRAINING.items()
        },
    )
    assert result.exit_code == 0, result.output
    assert f"skipped line {bad_line}: 'reply' is missing" in result.output
    # Written beside the folder, then renamed to it: nothing else is left behind.
    assert sorted(p.name for p in root.iterdir()) == ["out", "slice.jsonl"]
    return root / "out"


def rows(out: Path) -> list[dict]:  # type: ignore[type-arg]
    return json.loads((out / "results.json").read_text())  # type: ignore[no-any-return]


POLICIES = ("ablation", "accumulate", "bootstrap", "guarded", "replace")


def test_every_policy_reports_every_generation(run: Path) -> None:
    results = rows(run)
    assert sorted({(r["policy"], r["generation"]) for r in results}) == [
        (p, g) for p in POLICIES for g in (0, 1, 2)
    ]
    baselines = {r["policy"]: r["metrics"] for r in results if r["generation"] == 0}
    # One clean baseline, trained once and copied: every policy starts from it.
    assert len({json.dumps(b, sort_keys=True) for b in baselines.values()}) == 1
    for r in results:
        assert {"similarity@3", "head_similarity@3", "tail_similarity@3", "coverage"} <= set(
            r["metrics"]
        )
        assert {"distinct_1", "distinct_2", "distinct_share", "entropy", "vendi"} <= set(
            r["metrics"]
        )
        assert set(r["detector"]) == {
            "distinct_1",
            "distinct_1_pooled",
            "ttr",
            "entropy",
            "vocab_coverage",
        }
        assert r["bank_size"] > 0


def labelled(run: Path, policy: str) -> dict[int, set[str]]:
    """The messages each generation of a policy labelled (its synthetic candidates)."""
    with sqlite3.connect(run / policy / "replyguard.sqlite3") as db:
        found: dict[int, set[str]] = defaultdict(set)
        for number, message in db.execute(
            "SELECT g.number, c.message FROM synthetic_candidates c "
            "JOIN generations g ON g.id = c.generation_id"
        ):
            found[number].add(message)
        return found


def test_each_generation_labels_a_new_slice_of_traffic(run: Path) -> None:
    by_generation = labelled(run, "replace")
    assert set(by_generation) == {1, 2}
    assert by_generation[1].isdisjoint(by_generation[2])
    # Every policy gets the same slices (same seed): the first slice is the same traffic.
    assert labelled(run, "bootstrap")[1] == by_generation[1]
    with sqlite3.connect(run / "replace" / "replyguard.sqlite3") as db:
        benchmark = {
            m
            for (m,) in db.execute(
                "SELECT e.message FROM examples e JOIN reservoir r ON r.example_id = e.id "
                "WHERE r.role = 'benchmark'"
            )
        }
    assert benchmark and not benchmark & (by_generation[1] | by_generation[2])
    for r in rows(run):
        if r["generation"] > 0:
            # The slice of 20, less any message that is also a benchmark message (never a
            # prompt); the ablation labels nothing.
            assert (
                (r["labelled"] == 0) if r["policy"] == "ablation" else (17 <= r["labelled"] <= 20)
            )


def test_fresh_human_examples_arrive_for_guarded_and_its_ablation_only(run: Path) -> None:
    for r in rows(run):
        if r["generation"] == 0:
            continue
        # A fifth of the slice of 20, unless the pair was stored already.
        expected = 4 if r["policy"] in ("guarded", "ablation") else 0
        assert r["fresh_human"] <= expected
        assert r["fresh_human"] >= (3 if expected else 0)
        if r["policy"] in ("guarded", "ablation"):
            assert r["fresh_warning"] is False
        elif r["generation"] == 2:
            assert r["fresh_warning"] is True


def test_replace_trains_only_on_model_output_and_its_bank_shrinks(run: Path) -> None:
    from models.artifact import read_manifest

    results = {(r["policy"], r["generation"]): r for r in rows(run)}
    assert results[("replace", 2)]["bank_size"] < results[("replace", 0)]["bank_size"]
    assert results[("accumulate", 2)]["bank_size"] >= results[("accumulate", 0)]["bank_size"]
    manifest = read_manifest(run / "replace" / "models" / "v3")
    assert set(manifest["training"]["provenance_counts"]) == {"synthetic"}
    manifest = read_manifest(run / "accumulate" / "models" / "v3")
    assert manifest["training"]["provenance_counts"]["human"] > 0


def test_bootstrap_fine_tunes_on_its_own_replies_with_the_response_set_held(run: Path) -> None:
    from models.artifact import read_manifest

    results = {(r["policy"], r["generation"]): r for r in rows(run)}
    baseline = read_manifest(run / "bootstrap" / "models" / "v1")
    for number, version in ((1, "v2"), (2, "v3")):
        manifest = read_manifest(run / "bootstrap" / "models" / version)
        assert manifest["parent"] == f"v{number}"
        assert manifest["bank_size"] == baseline["bank_size"]
        assert manifest["triggering"] == baseline["triggering"]
        assert manifest["weights"] == baseline["weights"]
        # Only the replies production just wrote for this generation's slice.
        trained = manifest["training"]["examples"]
        assert trained == results[("bootstrap", number)]["synthetic_trained"] > 0
        assert set(manifest["training"]["provenance_counts"]) == {"synthetic"}


def test_ablation_trains_no_synthetic_row(run: Path) -> None:
    for r in rows(run):
        if r["policy"] == "ablation" and r["generation"] > 0:
            assert (r["labelled"], r["written"], r["synthetic_trained"]) == (0, 0, 0)


def test_guarded_never_promotes_what_the_gate_blocked(run: Path) -> None:
    for r in rows(run):
        if r["policy"] in ("guarded", "ablation") and r["generation"] > 0:
            assert r["promoted"] == (r["verdict"] != "block")
        if r["policy"] not in ("guarded", "ablation"):
            assert r["promoted"] is True


def test_report_has_plots_and_a_summary(run: Path) -> None:
    summary = (run / "summary.md").read_text()
    assert "| replace |" in summary and "| bootstrap |" in summary
    assert "replyguard simulate --policy all --generations 2 --slice 20" in summary
    assert "## ablation" in summary
    for name in ("similarity_at_3", "tail_similarity_at_3", "vendi", "distinct_share", "bank_size"):
        png = run / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({name}.png)" in summary


def test_bad_arguments_are_refused(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_policy = runner.invoke(
        main, ["simulate", "--policy", "collapse", "--out", str(tmp_path / "x")]
    )
    assert bad_policy.exit_code == 2
    assert "'collapse' is not one of" in bad_policy.output
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "old.json").write_text("{}")
    busy = runner.invoke(main, ["simulate", "--policy", "replace", "--out", str(tmp_path / "full")])
    assert busy.exit_code == 1
    assert "is not empty" in busy.output
    missing = runner.invoke(
        main,
        ["simulate", "--policy", "replace", "--data", "nope.jsonl", "--out", str(tmp_path / "y")],
    )
    assert "no such file" in missing.output
    rows_file = tmp_path / "few.jsonl"
    rows_file.write_text(
        "".join(
            json.dumps({"message": f"question {i}", "reply": f"answer {i}", "niche": "n"}) + "\n"
            for i in range(40)
        )
    )
    too_many = runner.invoke(
        main,
        [
            "simulate",
            "--policy",
            "replace",
            "--slice",
            "50",
            "--data",
            str(rows_file),
            "--out",
            str(tmp_path / "z"),
        ],
    )
    assert too_many.exit_code == 1
    assert "8 generations of 50 messages need 400 incoming messages" in too_many.output
    assert not (tmp_path / "z").exists()


def test_first_events_name_the_generation_and_the_metrics() -> None:
    from worker.simulation import GenerationResult
    from worker.simulation import detector_events
    from worker.simulation import first_gate_event

    def result(generation: int, verdicts: dict[str, str], entropy: float) -> GenerationResult:
        return GenerationResult(
            "bootstrap",
            generation,
            {},
            "pass",
            verdicts,
            [],
            True,
            19,
            100,
            detector={"distinct_1": 1.0, "ttr": 1.0, "entropy": entropy, "vocab_coverage": 0.2},
        )

    results = [
        result(0, {}, 4.0),
        result(1, {"vendi": "pass", "entropy": "warn"}, 3.8),
        result(2, {"vendi": "block", "entropy": "block"}, 3.5),
    ]
    assert first_gate_event(results, "bootstrap", "warn") == (1, ["entropy"])
    assert first_gate_event(results, "bootstrap", "block") == (2, ["vendi", "entropy"])
    assert first_gate_event(results, "guarded", "warn") is None
    # Token entropy 3.5 is 12.5% below 4.0: tier 1 (10%) fires at generation 2.
    assert detector_events(results, "bootstrap") == {"tier 1": (2, "entropy"), "tier 3": None}
