"""The collapse experiment on a small slice of the demo data: the policies differ exactly
where they should, and the report is written."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pytest
from click.testing import CliRunner

from core.demo import chatterbot_rows
from webapp.cli import main

pytestmark = pytest.mark.slow


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
            "--data",
            str(data),
            "--skip-invalid",
            "--out",
            str(root / "out"),
        ],
        # A slice of one-off chatterbot replies: with the support rule at its default the
        # response set would be empty (the rule has its own tests).
        env={"REPLYGUARD_RESPONSE_MIN_SUPPORT": "1"},
    )
    assert result.exit_code == 0, result.output
    assert f"skipped line {bad_line}: 'reply' is missing" in result.output
    # Written beside the folder, then renamed to it: nothing else is left behind.
    assert sorted(p.name for p in root.iterdir()) == ["out", "slice.jsonl"]
    return root / "out"


def rows(out: Path) -> list[dict]:  # type: ignore[type-arg]
    return json.loads((out / "results.json").read_text())  # type: ignore[no-any-return]


def test_every_policy_reports_every_generation(run: Path) -> None:
    results = rows(run)
    assert sorted({(r["policy"], r["generation"]) for r in results}) == [
        (p, g) for p in ("accumulate", "guarded", "replace") for g in (0, 1, 2)
    ]
    baselines = {r["policy"]: r["figures"] for r in results if r["generation"] == 0}
    # Same seed, same data: the three start from the same clean baseline.
    assert baselines["replace"] == baselines["accumulate"] == baselines["guarded"]
    for r in results:
        assert {"similarity@3", "tail_similarity@3", "vendi", "distinct_share"} <= set(r["figures"])
        assert r["bank_size"] > 0


def test_replace_trains_only_on_model_output_and_its_bank_shrinks(run: Path) -> None:
    from models.artifact import read_manifest

    results = {(r["policy"], r["generation"]): r for r in rows(run)}
    assert results[("replace", 2)]["bank_size"] < results[("replace", 0)]["bank_size"]
    assert results[("accumulate", 2)]["bank_size"] >= results[("accumulate", 0)]["bank_size"]
    manifest = read_manifest(run / "replace" / "models" / "v3")
    assert set(manifest["training"]["provenance_counts"]) == {"synthetic"}
    manifest = read_manifest(run / "accumulate" / "models" / "v3")
    assert manifest["training"]["provenance_counts"]["human"] > 0


def test_guarded_never_promotes_what_the_gate_blocked(run: Path) -> None:
    for r in rows(run):
        if r["policy"] == "guarded" and r["generation"] > 0:
            assert r["promoted"] == (r["verdict"] != "block")
        if r["policy"] != "guarded":
            assert r["promoted"] is True


def test_report_has_plots_and_a_summary(run: Path) -> None:
    summary = (run / "summary.md").read_text()
    assert "| replace |" in summary
    assert "replyguard simulate --policy all --generations 2" in summary
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
