"""The collapse experiment: the self-consuming loop run offline, generation after generation.

    replyguard simulate --policy replace|accumulate|guarded|all --generations 8 --out DIR

Every policy runs the same stage functions as the workers (``worker.pipeline``) on its own
data folder; only what a policy changes is written here:

- ``guarded``: the production pipeline as shipped: quality rules, deduplication, the capped
  and tail-weighted accumulate mix, and the gate deciding what is promoted.
- ``accumulate``: real data kept and synthetic data added, with no filtering, no
  deduplication, no cap, and every candidate promoted.
- ``replace``: each generation trains only on what the previous model wrote, and every
  candidate is promoted: the recipe for collapse. This policy exists only here, for the
  experiment; the production pipeline has no way to do it.

In every policy the prompts are the incoming traffic (messages whose human replies the models
never see) and the benchmark is never trained on. The gate judges every candidate, so the
report shows when it would have warned or blocked even where a policy ignores it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from typing import Literal

from sqlalchemy import select
from sqlalchemy import update

from core.demo import demo_rows
from core.demo import load_with_traffic
from core.ingest import ExampleIn
from core.ingest import FileExamples
from core.ingest import read_examples
from core.provenance import Provenance
from core.schema import CandidateStatus
from core.schema import Generation
from core.schema import SyntheticCandidate
from core.settings import Settings
from models.artifact import read_manifest
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import get_version
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.pipeline import STAGES
from worker.pipeline import begin_stage
from worker.pipeline import fail_stage
from worker.pipeline import finish_stage
from worker.pipeline import generation_dir
from worker.pipeline import run_stage
from worker.pipeline import start_generation
from worker.pipeline import write_json
from worker.promotion import accept_generation

Policy = Literal["replace", "accumulate", "guarded"]
POLICIES: tuple[Policy, ...] = ("replace", "accumulate", "guarded")
# The figures drawn, by what they show.
PLOTTED = {
    "similarity@3": "Relevance: closeness of the best top-3 suggestion (all niches)",
    "head_similarity@3": "Relevance in common niches",
    "tail_similarity@3": "Rare-niche coverage (tail similarity@3)",
    "distinct_share": "Distinct suggestions / all suggestions",
    "distinct_2": "Phrase variety (distinct-2)",
    "vendi": "Vendi score of the suggestions",
}


@dataclass(frozen=True)
class GenerationResult:
    policy: str
    generation: int
    figures: dict[str, float]
    verdict: str
    # Each figure's own verdict: the gate's "no fresh human data" warning fires in every
    # simulated generation (there is none), so the figures tell the policies apart.
    figure_verdicts: dict[str, str]
    reasons: list[str]
    promoted: bool
    bank_size: int
    training_examples: int


Rows = Sequence[tuple[str, ExampleIn]]


def simulation_rows(
    data: str, settings: Settings, skip_invalid: bool = False
) -> tuple[Rows, FileExamples | None]:
    """(source, example) rows to simulate on: the demo data the settings name (core.demo)
    for ``data == "demo"``, else a JSONL or CSV file of human examples read and validated as
    ``replyguard data import`` reads it (same errors: FileRefused, ImportFailed,
    NothingToImport), with what reading it found (notes, skipped rows) for the caller to
    report."""
    if data == "demo":
        return demo_rows(settings), None
    path = Path(data)
    read = read_examples(path, Provenance.HUMAN, skip_invalid)
    return [(f"import:{path.name}", example) for example in read.valid], read


def run_policy(
    policy: Policy,
    generations: int,
    rows: Rows,
    settings: Settings,
    encoder: Encoder,
    progress: Callable[[str], None] = print,
) -> list[GenerationResult]:
    ctx = PipelineContext.from_settings(settings, encoder)
    with ctx.db.session() as session:
        load_with_traffic(session, ctx.settings, list(rows))
    baseline, _ = train_baseline(ctx, actor=f"simulate:{policy}")
    results = [_result(ctx, policy, 0, promoted=True)]
    progress(f"{policy}: generation 0 (clean baseline) {baseline.version}")
    for _ in range(generations):
        generation_id = start_generation(ctx, actor=f"simulate:{policy}")
        for stage in STAGES:
            custom = _CUSTOM.get((policy, stage))
            if custom is None:
                run_stage(ctx, generation_id, stage)
            else:
                _run_custom(ctx, generation_id, stage, custom)
        with ctx.db.session() as session:
            generation = session.get_one(Generation, generation_id)
            number, status = generation.number, generation.status
        result = _result(ctx, policy, number, promoted=status in ("passed", "warned"))
        results.append(result)
        progress(f"{policy}: generation {number} {result.verdict} ({status})")
    ctx.db.dispose()
    return results


def _run_custom(
    ctx: PipelineContext,
    generation_id: int,
    stage: str,
    fn: Callable[[PipelineContext, int], dict[str, Any]],
) -> None:
    if not begin_stage(ctx, generation_id, stage):
        return
    started = time.perf_counter()
    try:
        counts = fn(ctx, generation_id)
    except BaseException as exc:
        fail_stage(ctx, generation_id, stage, exc)
        raise
    finish_stage(ctx, generation_id, stage, counts, time.perf_counter() - started)


def _keep_everything(ctx: PipelineContext, generation_id: int) -> dict[str, Any]:
    """No quality rules, no deduplication: every synthetic reply is kept."""
    with ctx.db.session() as session:
        result = session.execute(
            update(SyntheticCandidate)
            .where(SyntheticCandidate.generation_id == generation_id)
            .values(status=CandidateStatus.KEPT.value)
        )
        kept = int(getattr(result, "rowcount", 0) or 0)
    return {"checked": kept, "kept": kept, "removed": {}}


def _mix_replace(ctx: PipelineContext, generation_id: int) -> dict[str, Any]:
    """Only what the previous model just wrote: no human example at all."""
    refs = _candidate_refs(ctx, generation_id)
    write_json(
        generation_dir(ctx, generation_id) / "training_set.json",
        [{"ref": ref, "weight": 1.0} for ref in refs],
    )
    return {"human": 0, "synthetic": len(refs), "human_share": 0.0}


def _mix_accumulate(ctx: PipelineContext, generation_id: int) -> dict[str, Any]:
    """Every stored example and this generation's replies, unweighted and uncapped."""
    from worker.data import example_pools

    with ctx.db.session() as session:
        pools = example_pools(session)
    stored = [f"example:{r.id}" for r in pools.human + pools.human_selected + pools.synthetic]
    refs = stored + _candidate_refs(ctx, generation_id)
    write_json(
        generation_dir(ctx, generation_id) / "training_set.json",
        [{"ref": ref, "weight": 1.0} for ref in refs],
    )
    return {
        "human": len(pools.human),
        "synthetic": len(refs) - len(pools.human),
        "human_share": len(pools.human) / max(len(refs), 1),
    }


def _promote_always(ctx: PipelineContext, generation_id: int) -> dict[str, Any]:
    """Promote whatever the gate said (recorded, not obeyed)."""
    with ctx.db.session() as session:
        generation = session.get_one(Generation, generation_id)
        verdict = generation.decision.get("verdict")
        added = accept_generation(
            session, ctx.settings, generation, "simulate", "policy ignores the gate"
        )
    return {"verdict": verdict, "promoted": True, "synthetic_added": added}


def _candidate_refs(ctx: PipelineContext, generation_id: int) -> list[str]:
    with ctx.db.session() as session:
        ids = session.scalars(
            select(SyntheticCandidate.id)
            .where(
                SyntheticCandidate.generation_id == generation_id,
                SyntheticCandidate.status == CandidateStatus.KEPT.value,
            )
            .order_by(SyntheticCandidate.id)
        )
        return [f"candidate:{i}" for i in ids]


_CUSTOM: dict[tuple[str, str], Callable[[PipelineContext, int], dict[str, Any]]] = {
    ("replace", "filter"): _keep_everything,
    ("replace", "deduplicate"): lambda ctx, gid: {"skipped": True},
    ("replace", "mix"): _mix_replace,
    ("replace", "promote"): _promote_always,
    ("accumulate", "filter"): _keep_everything,
    ("accumulate", "deduplicate"): lambda ctx, gid: {"skipped": True},
    ("accumulate", "mix"): _mix_accumulate,
    ("accumulate", "promote"): _promote_always,
}


def _result(ctx: PipelineContext, policy: str, number: int, promoted: bool) -> GenerationResult:
    with ctx.db.session() as session:
        generation = session.scalars(select(Generation).where(Generation.number == number)).one()
        candidate = generation.metrics["candidate"]
        version = get_version(session, generation.candidate_version or "")
        manifest = read_manifest(artifact_dir(ctx.settings, version))
    figures = {f["name"]: f["value"] for f in candidate["figures"]}
    decision = generation.decision or {}
    return GenerationResult(
        policy=policy,
        generation=number,
        figures=figures,
        verdict=str(decision.get("verdict", "pass")),
        figure_verdicts={f["name"]: f["verdict"] for f in decision.get("figures", [])},
        reasons=list(decision.get("reasons", [])),
        promoted=promoted,
        bank_size=int(manifest["bank_size"]),
        training_examples=int(manifest.get("training", {}).get("examples", 0)),
    )


# ---------------------------------------------------------------------------------------
# Reports


def write_report(results: Sequence[GenerationResult], out: Path, command: str) -> list[Path]:
    """results.json, summary.md and one PNG per plotted figure; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=2, ensure_ascii=False)
    )
    written = [out / "results.json", *_plots(results, out)]
    (out / "summary.md").write_text(_summary(results, command, [p.name for p in written[1:]]))
    written.append(out / "summary.md")
    return written


def first_gate_event(results: Sequence[GenerationResult], policy: str, verdict: str) -> int | None:
    """The first generation where some figure got ``verdict`` (a block counts as a warning)."""
    wanted = {"warn", "block"} if verdict == "warn" else {verdict}
    for r in sorted(results, key=lambda r: r.generation):
        if r.policy == policy and wanted & set(r.figure_verdicts.values()):
            return r.generation
    return None


def _summary(results: Sequence[GenerationResult], command: str, plots: list[str]) -> str:
    policies = [p for p in POLICIES if any(r.policy == p for r in results)]
    last = max(r.generation for r in results)
    lines = [
        "# Collapse experiment",
        "",
        f"    {command}",
        "",
        "## First figure the gate warned or blocked on (every candidate is judged, whatever the"
        " policy then did)",
        "",
        "| policy | first warn (or block) | first block |",
        "|---|---|---|",
    ]
    for policy in policies:
        warn = first_gate_event(results, policy, "warn")
        block = first_gate_event(results, policy, "block")
        lines.append(f"| {policy} | {warn or 'never'} | {block or 'never'} |")
    lines += [
        "",
        f"## Figures at generation 0 and {last}",
        "",
        "| figure | " + " | ".join(f"{p} g0 | {p} g{last}" for p in policies) + " |",
        "|---|" + "---|---|" * len(policies),
    ]
    for name in [*PLOTTED, "recall@3", "bank_size"]:
        cells = []
        for policy in policies:
            for generation in (0, last):
                row = next(
                    (r for r in results if r.policy == policy and r.generation == generation), None
                )
                if row is None:
                    cells.append("-")
                elif name == "bank_size":
                    cells.append(str(row.bank_size))
                else:
                    cells.append(f"{row.figures.get(name, float('nan')):.3f}")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def _plots(results: Sequence[GenerationResult], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    policies = [p for p in POLICIES if any(r.policy == p for r in results)]
    for name, title in [*PLOTTED.items(), ("bank_size", "Distinct replies the model can suggest")]:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        for policy in policies:
            rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.generation)
            values = [
                float(r.bank_size) if name == "bank_size" else r.figures.get(name, float("nan"))
                for r in rows
            ]
            ax.plot([r.generation for r in rows], values, marker="o", label=policy)
            blocked = [
                (r.generation, v) for r, v in zip(rows, values, strict=True) if r.verdict == "block"
            ]
            if blocked:
                ax.scatter(
                    [g for g, _ in blocked],
                    [v for _, v in blocked],
                    marker="x",
                    color="red",
                    s=60,
                    zorder=3,
                )
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("generation (red x: the gate blocks that candidate)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        path = out / f"{name.replace('@', '_at_')}.png"
        fig.savefig(path)
        plt.close(fig)
        paths.append(path)
    return paths
