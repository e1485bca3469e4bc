"""The collapse experiment: the self-consuming loop run offline, generation after generation.

    replyguard simulate --policy replace|accumulate|guarded|bootstrap|ablation|all
                        --generations 8 [--slice N] [--fresh-human N] --out DIR

Every policy runs the workers' pipeline (``worker.pipeline``) on its own copy of one data
folder (the same clean baseline, generation 0, trained once), with its own stages swapped in
for some of the pipeline's (:data:`POLICY_PIPELINES`); only what a policy changes is written
here:

- ``guarded``: the production pipeline as shipped: quality rules, deduplication, the capped
  and tail-weighted accumulate mix, and the gate deciding what is promoted.
- ``bootstrap``: the quiet loop, what a team does when it "just fine-tunes on its own
  outputs": the candidate starts from production's weights and is trained only on the
  replies production just wrote for the new slice of traffic (no human data, no filtering,
  no cap); the response set and the triggering threshold are held as they are, and the
  written pairs join the model's nearest-message index (a retrieval model's memory is its
  training pairs). Every candidate is promoted.
- ``accumulate``: real data kept and synthetic data added, with no filtering, no
  deduplication, no cap, and every candidate promoted.
- ``replace``: each generation trains only on what the previous model wrote, response set
  included, and every candidate is promoted: the textbook recipe for collapse. This policy
  exists only here; the production pipeline has no way to do it.
- ``ablation``: ``guarded`` with no synthetic rows at all (no prompt is labelled): what the
  same generations gain from the fresh human examples and from training again, so a gain
  of the other policies can be credited to their synthetic data or not. Every run has it.

Traffic arrives as it does in production: a seeded share of each niche's messages is kept
as incoming traffic (replies hidden, ``demo_traffic_fraction``), put in a seeded order, and
generation g labels the g-th *slice* of it, disjoint from every other slice and from the
benchmark (traffic rows are never examples). Of each slice, the first ``fresh_human``
messages also arrive with the reply their user typed, as new human examples (by default for
``guarded`` and ``ablation`` only), so the gate's "no fresh human examples" warning means
something. The benchmark is never trained on; the gate judges every candidate, so the
report shows when it would have warned or blocked even where a policy ignores it.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any
from typing import Literal

import numpy as np
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select

from core.demo import DemoRow
from core.demo import demo_rows
from core.demo import load_examples
from core.demo import traffic_indices
from core.generations import generation_numbered
from core.generations import get_generation
from core.ingest import ExampleIn
from core.ingest import FileExamples
from core.ingest import insert_examples
from core.ingest import read_examples
from core.provenance import Provenance
from core.references import ExampleRef
from core.schema import CandidateStatus
from core.schema import IncomingMessage
from core.schema import SyntheticCandidate
from models.adapter_training import train_adapter
from models.artifact import read_manifest
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import get_version
from models.registry import register
from models.suggester import SuggestionModel
from safeguards.detector import detector_metrics
from safeguards.detector import first_firing
from safeguards.metrics import metric_label
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.data import example_pools
from worker.pipeline import PIPELINE
from worker.pipeline import Pipeline
from worker.pipeline import run_generation
from worker.pipeline import start_generation
from worker.promotion import accept_generation
from worker.settings import Settings
from worker.stages import Counts
from worker.stages import DeduplicateStage
from worker.stages import FilterStage
from worker.stages import GenerationRun
from worker.stages import MixStage
from worker.stages import PromoteStage
from worker.stages import TrainStage
from worker.stages.filter import FilterCounts
from worker.stages.records import TrainingItem
from worker.stages.records import write_training_set
from worker.stages.staging import kept
from worker.stages.staging import mark_kept

Policy = Literal["replace", "accumulate", "guarded", "bootstrap", "ablation"]
POLICIES: tuple[Policy, ...] = ("replace", "accumulate", "guarded", "bootstrap", "ablation")
ABLATION: Policy = "ablation"
# Policies that get the trickle of fresh human examples unless --fresh-human says otherwise:
# the production pipeline and its ablation (the same generations, no synthetic rows).
FRESH_BY_DEFAULT: tuple[Policy, ...] = ("guarded", ABLATION)
# The metrics drawn (titled with their labels in safeguards.metrics' registry).
PLOTTED = (
    "similarity@3",
    "head_similarity@3",
    "tail_similarity@3",
    "coverage",
    "distinct_share",
    "distinct_2",
    "entropy",
    "vendi",
)
# Every metric of the per-generation tables: relevance (all, common, rare niches and
# coverage) beside every diversity metric.
TABLED = (
    "similarity@3",
    "head_similarity@3",
    "tail_similarity@3",
    "accuracy@3",
    "coverage",
    "distinct_1",
    "distinct_2",
    "distinct_share",
    "entropy",
    "vendi",
    "pairwise_distance",
)


@dataclass(frozen=True)
class Plan:
    """What a run feeds each generation.

    Args:
        generations: generations after the clean baseline.
        slice: incoming messages that arrive (and are labelled) per generation.
        fresh_human: per policy, how many of each slice's messages also arrive with the
            reply their user typed, as human examples.
    """

    generations: int
    slice: int
    fresh_human: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class GenerationResult:
    """One generation of one policy as the report shows it: the candidate's metrics (by
    name, safeguards.metrics), the gate's verdict and each metric's, whether the policy
    promoted it, its bank size and training examples, what the generation labelled and
    learnt from, the comparison detector's panel, and its wall time in seconds."""

    policy: str
    generation: int
    metrics: dict[str, float]
    verdict: str
    # Each metric's own verdict: which metric tripped the gate (the "no fresh human data"
    # warning is a reason of its own, see ``fresh_warning``).
    metric_verdicts: dict[str, str]
    reasons: list[str]
    promoted: bool
    bank_size: int
    training_examples: int
    # Prompts labelled, synthetic replies written and trained on, human examples that
    # arrived, for this generation (0 for the baseline).
    labelled: int = 0
    written: int = 0
    synthetic_trained: int = 0
    fresh_human: int = 0
    fresh_warning: bool = False
    # The comparison detector's metrics of the candidate's suggestions (safeguards.detector).
    detector: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0


Rows = Sequence[DemoRow]


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


def traffic_order(rows: Rows, settings: Settings) -> tuple[set[int], list[ExampleIn]]:
    """The rows kept as traffic (core.demo.traffic_indices) and the traffic's distinct
    messages in the order the generations take them (a hash seeded with ``settings.seed``),
    each with the human pair of its first row (its reply hidden until it arrives as a fresh
    human example)."""
    traffic = traffic_indices(settings, rows)
    first: dict[tuple[str, str], ExampleIn] = {}
    for i in sorted(traffic):
        example = rows[i][1]
        first.setdefault((example.message, example.niche), example)

    def rank(key: tuple[str, str]) -> bytes:
        return hashlib.sha256(
            f"{settings.seed}:simulate-slice:{key[0]}\x1f{key[1]}".encode()
        ).digest()

    return traffic, [first[key] for key in sorted(first, key=rank)]


def default_slice(traffic: int, generations: int) -> int:
    """The slice when none is given: the traffic shared evenly among the generations."""
    return max(traffic // generations, 1)


def run_simulation(
    policies: Sequence[Policy],
    plan: Plan,
    rows: Rows,
    settings: Settings,
    encoder: Encoder,
    work: Path,
    progress: Callable[[str], None] = print,
) -> list[GenerationResult]:
    """Train the clean baseline once, then run every policy on its own copy of the folder.

    Args:
        policies: which to run, in order.
        plan: generations, slice size and fresh human examples per policy.
        rows: the data (:func:`simulation_rows`).
        settings: the base settings (seed, model, gate); ``data_dir`` is replaced.
        encoder: shared by every policy.
        work: an empty folder; each policy's data folder is written to ``work / policy``.

    Returns:
        One :class:`GenerationResult` per policy and generation, the baseline included.

    Raises:
        ValueError: the traffic has fewer messages than ``generations * slice``.
        NoTrainingData: no human example to train the baseline on.
    """
    traffic, order = traffic_order(rows, settings)
    needed = plan.generations * plan.slice
    if needed > len(order):
        raise ValueError(
            f"{plan.generations} generations of {plan.slice} messages need {needed} incoming "
            f"messages and the data keep {len(order)} as traffic: give a smaller --slice, "
            "fewer generations, or raise REPLYGUARD_DEMO_TRAFFIC_FRACTION"
        )
    seed_dir = work / ".baseline"
    ctx = PipelineContext.from_settings(settings.with_overrides(data_dir=seed_dir), encoder)
    started = time.perf_counter()
    with ctx.db.session() as session:
        load_examples(session, rows, skip=traffic)
    baseline, _ = train_baseline(ctx, actor="simulate")
    ctx.db.dispose()
    progress(
        f"generation 0 (clean baseline) {baseline.version}: {time.perf_counter() - started:.1f} s"
    )
    results: list[GenerationResult] = []
    for policy in policies:
        shutil.copytree(seed_dir, work / policy)
        results += run_policy(
            policy, plan, order, settings.with_overrides(data_dir=work / policy), encoder, progress
        )
    shutil.rmtree(seed_dir)
    return results


def run_policy(
    policy: Policy,
    plan: Plan,
    traffic: Sequence[ExampleIn],
    settings: Settings,
    encoder: Encoder,
    progress: Callable[[str], None] = print,
) -> list[GenerationResult]:
    """Run ``plan.generations`` generations of one policy in ``settings.data_dir``, a data
    folder holding the clean baseline in production; ``traffic`` in arrival order
    (:func:`traffic_order`). Returns the baseline's result and one per generation."""
    labelled = 0 if policy == ABLATION else plan.slice
    ctx = PipelineContext.from_settings(
        settings.with_overrides(synthesize_max_prompts=labelled), encoder
    )
    fresh = plan.fresh_human.get(policy, 0)
    results = [_result(ctx, policy, 0, promoted=True)]
    for number in range(1, plan.generations + 1):
        started = time.perf_counter()
        arrived = _arrive(ctx, traffic[(number - 1) * plan.slice : number * plan.slice], fresh)
        generation_id = start_generation(ctx, actor=f"simulate:{policy}")
        status = run_generation(ctx, generation_id, POLICY_PIPELINES[policy])
        result = _result(
            ctx,
            policy,
            number,
            status in ("passed", "warned"),
            arrived,
            time.perf_counter() - started,
        )
        results.append(result)
        progress(
            f"{policy}: generation {number} {result.verdict} ({status}, {result.seconds:.1f} s)"
        )
    ctx.db.dispose()
    return results


def _arrive(ctx: PipelineContext, chunk: Sequence[ExampleIn], fresh: int) -> int:
    """This generation's traffic replaces the last one's (which was labelled already); the
    first ``fresh`` of its messages arrive with their users' replies, as human examples.
    Returns how many of those were new (a pair stored already is not added twice)."""
    with ctx.db.session() as session:
        session.execute(delete(IncomingMessage))
        if chunk:
            session.execute(
                insert(IncomingMessage), [{"message": e.message, "niche": e.niche} for e in chunk]
            )
        if not fresh:
            return 0
        added, _ = insert_examples(session, chunk[:fresh], source="simulate:fresh-human")
        return added


# ---------------------------------------------------------------------------------------
# The stages a policy swaps into the pipeline


@dataclass(frozen=True)
class _Skipped(Counts):
    skipped: bool = True


@dataclass(frozen=True)
class _MixedAnyway(Counts):
    human: int
    synthetic: int
    human_share: float


@dataclass(frozen=True)
class _PromotedAnyway(Counts):
    # What the gate said (recorded, not obeyed).
    verdict: str | None
    promoted: bool
    synthetic_added: int


@dataclass(frozen=True)
class _BootstrapCounts(Counts):
    examples: int
    bank_size: int
    candidate: str


class _KeepEverything:
    """No quality rules: every synthetic reply is kept."""

    name = FilterStage.name
    label = "Quality rules (none: every reply kept)"

    def run(self, run: GenerationRun) -> FilterCounts:
        with run.ctx.db.session() as session:
            kept = mark_kept(session, run.generation_id)
        return FilterCounts(checked=kept, kept=kept, removed={})


class _NoDeduplication:
    """No deduplication."""

    name = DeduplicateStage.name
    label = "Duplicate removal (none)"

    def run(self, run: GenerationRun) -> _Skipped:
        return _Skipped()


class _MixReplace:
    """Only what the previous model just wrote: no human example at all."""

    name = MixStage.name
    label = "Training on the model's replies only"

    def run(self, run: GenerationRun) -> _MixedAnyway:
        refs = _kept_refs(run)
        write_training_set(run.folder, [TrainingItem(ref, 1.0) for ref in refs])
        return _MixedAnyway(human=0, synthetic=len(refs), human_share=0.0)


class _MixAccumulate:
    """Every stored example and this generation's replies, unweighted and uncapped."""

    name = MixStage.name
    label = "Mixing everything, uncapped"

    def run(self, run: GenerationRun) -> _MixedAnyway:
        pools = run.examples()
        stored = [
            ExampleRef.example(r.id) for r in pools.human + pools.human_selected + pools.synthetic
        ]
        refs = stored + _kept_refs(run)
        write_training_set(run.folder, [TrainingItem(ref, 1.0) for ref in refs])
        return _MixedAnyway(
            human=len(pools.human),
            synthetic=len(refs) - len(pools.human),
            human_share=len(pools.human) / max(len(refs), 1),
        )


class _PromoteAlways:
    """Promote whatever the gate said (recorded, not obeyed)."""

    name = PromoteStage.name
    label = "Promote (whatever the gate said)"

    def run(self, run: GenerationRun) -> _PromotedAnyway:
        with run.ctx.db.session() as session:
            generation = run.generation(session)
            verdict = generation.decision.get("verdict")
            added = accept_generation(
                session, run.ctx.settings, generation, "simulate", "policy ignores the gate"
            )
            counts = _PromotedAnyway(verdict=verdict, promoted=True, synthetic_added=added)
            run.record_done(session, generation, counts)
        return counts


class _TrainBootstrap:
    """Fine-tune production on the replies it just wrote: its adapter trained further on
    those pairs alone; its response set, signal weights and triggering threshold kept; the
    pairs added to its nearest-message index (each votes for the reply it was given)."""

    name = TrainStage.name
    label = "Fine-tuning production on its own replies"

    def run(self, run: GenerationRun) -> _BootstrapCounts:
        ctx, generation_id = run.ctx, run.generation_id
        with ctx.db.session() as session:
            pairs = session.execute(
                select(SyntheticCandidate.message, SyntheticCandidate.reply)
                .where(
                    SyntheticCandidate.generation_id == generation_id,
                    SyntheticCandidate.status == CandidateStatus.KEPT.value,
                )
                .order_by(SyntheticCandidate.id)
            ).all()
        model = run.parent_model()
        reply_id = {text: i for i, text in enumerate(model.bank.texts)}
        ids = np.asarray([reply_id[reply] for _, reply in pairs], dtype=np.int64)
        adapter, losses = model.adapter, list[float]()
        messages = np.zeros((0, ctx.encoder.dim), dtype=np.float32)
        if pairs:
            messages = ctx.encoder.encode([m for m, _ in pairs])
            adapter, losses = train_adapter(
                messages,
                model.bank_embeddings[ids],
                ids,
                np.ones(len(pairs), dtype=np.float32),
                ctx.settings.adapter,
                start=model.adapter,
            )
        tuned = SuggestionModel(
            ctx.encoder,
            adapter,
            model.bank,
            model.bank_embeddings,
            np.vstack([model.message_embeddings, messages]),
            np.concatenate([model.message_reply_ids, ids]),
            model.weights,
            model.retrieval,
            triggering=model.triggering,
            prompts=model.prompts,
            tone=model.tone.classifier,
        )
        metadata = {
            "training": {
                "examples": len(pairs),
                "provenance_counts": {"synthetic": len(pairs)} if pairs else {},
                "final_loss": losses[-1] if losses else None,
                "held": "response set, weights and triggering threshold of the parent",
                "generation_id": generation_id,
            }
        }

        def record(session: Any, version: Any) -> None:
            get_generation(session, generation_id).candidate_version = version.version

        version = register(
            ctx.db, ctx.settings, tuned, run.number, run.parent_version, metadata, record
        )
        return _BootstrapCounts(
            examples=len(pairs), bank_size=len(model.bank), candidate=version.version
        )


def _kept_refs(run: GenerationRun) -> list[ExampleRef]:
    with run.ctx.db.session() as session:
        return [reply.ref for reply in kept(session, run.generation_id)]


# No quality rules, no deduplication, every candidate promoted.
_UNGUARDED = (_KeepEverything(), _NoDeduplication(), _PromoteAlways())
# Each policy's pipeline: the production one with the policy's stages swapped in.
POLICY_PIPELINES: dict[Policy, Pipeline] = {
    "guarded": PIPELINE,
    ABLATION: PIPELINE,
    "replace": PIPELINE.with_stages(*_UNGUARDED, _MixReplace()),
    "accumulate": PIPELINE.with_stages(*_UNGUARDED, _MixAccumulate()),
    "bootstrap": PIPELINE.with_stages(*_UNGUARDED, _MixReplace(), _TrainBootstrap()),
}


def _result(
    ctx: PipelineContext,
    policy: str,
    number: int,
    promoted: bool,
    fresh_human: int = 0,
    seconds: float = 0.0,
) -> GenerationResult:
    with ctx.db.session() as session:
        generation = generation_numbered(session, number)
        candidate = generation.metrics["candidate"]
        version = get_version(session, generation.candidate_version or "")
        manifest = read_manifest(artifact_dir(ctx.settings, version))
        shown = [
            row[: ctx.settings.default_k] for row in version.evaluation["evaluation"]["suggestions"]
        ]
        stages = generation.stages
        gold = [r.reply for r in example_pools(session).benchmark]
    metrics = {m["name"]: m["value"] for m in candidate["metrics"]}
    decision = generation.decision or {}
    counts = {
        name: stages.get(name, {}).get("counts", {}) for name in ("snapshot", "synthesize", "mix")
    }
    return GenerationResult(
        policy=policy,
        generation=number,
        metrics=metrics,
        verdict=str(decision.get("verdict", "pass")),
        metric_verdicts={m["name"]: m["verdict"] for m in decision.get("metrics", [])},
        reasons=list(decision.get("reasons", [])),
        promoted=promoted,
        bank_size=int(manifest["bank_size"]),
        training_examples=int(manifest.get("training", {}).get("examples", 0)),
        labelled=int(counts["snapshot"].get("prompts", 0)),
        written=int(counts["synthesize"].get("written", 0)),
        synthetic_trained=int(counts["mix"].get("synthetic", 0)),
        fresh_human=fresh_human,
        fresh_warning=number > 0 and int(decision.get("fresh_human_examples", 1)) <= 0,
        detector=detector_metrics([t for row in shown for t in row], gold),
        seconds=round(seconds, 2),
    )


# ---------------------------------------------------------------------------------------
# Reports


def write_report(
    results: Sequence[GenerationResult], out: Path, command: str, plan: Plan
) -> list[Path]:
    """results.json, summary.md and one PNG per plotted metric; return the files written."""
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(
        json.dumps([r.__dict__ for r in results], indent=2, ensure_ascii=False)
    )
    written = [out / "results.json", *_plots(results, out)]
    (out / "summary.md").write_text(_summary(results, command, plan, [p.name for p in written[1:]]))
    written.append(out / "summary.md")
    return written


def first_gate_event(
    results: Sequence[GenerationResult], policy: str, verdict: str
) -> tuple[int, list[str]] | None:
    """The first generation where some metric got ``verdict`` (a block counts as a warning),
    with the metrics that got it; None when none did. The "no fresh human examples" warning
    is not a metric's and does not count."""
    wanted = {"warn", "block"} if verdict == "warn" else {verdict}
    for r in sorted(results, key=lambda r: r.generation):
        tripped = [name for name, v in r.metric_verdicts.items() if v in wanted]
        if r.policy == policy and tripped:
            return r.generation, tripped
    return None


def detector_events(
    results: Sequence[GenerationResult], policy: str
) -> dict[str, tuple[int, str] | None]:
    """When each tier of the comparison detector (safeguards.detector) first fires for a
    policy, and on which metric."""
    rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.generation)
    return first_firing([r.detector for r in rows])


def _event(event: tuple[int, Any] | None) -> str:
    if event is None:
        return "never"
    generation, what = event
    names = what if isinstance(what, str) else ", ".join(what)
    return f"{generation} ({names})"


def _summary(
    results: Sequence[GenerationResult], command: str, plan: Plan, plots: list[str]
) -> str:
    policies = [p for p in POLICIES if any(r.policy == p for r in results)]
    lines = [
        "# Collapse experiment",
        "",
        f"    {command}",
        "",
        f"{plan.generations} generations; each labels a new slice of {plan.slice} incoming "
        "messages. Fresh human examples per generation: "
        + ", ".join(f"{p} {plan.fresh_human.get(p, 0)}" for p in policies)
        + ".",
        "",
        "## First warning and first block: the gate and the comparison detector",
        "",
        "Every candidate is judged, whatever the policy then does with it. The gate's columns "
        "name the metrics that tripped it (the no-fresh-human-data warning is not counted); "
        "the detector (safeguards/detector.py: rootiq-ai/model-collapse-detection's tiers, "
        "a drop of 10% (tier 1) or 20% (tier 3) below generation 0) names its metric.",
        "",
        "| policy | gate: first warn (or block) | gate: first block | detector tier 1 "
        "| detector tier 3 |",
        "|---|---|---|---|---|",
    ]
    for policy in policies:
        fired = detector_events(results, policy)
        lines.append(
            f"| {policy} | {_event(first_gate_event(results, policy, 'warn'))} "
            f"| {_event(first_gate_event(results, policy, 'block'))} "
            f"| {_event(fired['tier 1'])} | {_event(fired['tier 3'])} |"
        )
    for policy in policies:
        rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.generation)
        lines += [
            "",
            f"## {policy}",
            "",
            "| g | verdict (metrics) | "
            + " | ".join(TABLED)
            + " | bank | labelled | synthetic trained | fresh human | detector d-1 pooled "
            "| detector entropy | detector vocab |",
            "|---" * (len(TABLED) + 9) + "|",
        ]
        for r in rows:
            tripped = [n for n, v in r.metric_verdicts.items() if v != "pass"]
            verdict = r.verdict + (f" ({', '.join(tripped)})" if tripped else "")
            if r.fresh_warning:
                verdict += " (no fresh human data)"
            if not r.promoted:
                verdict += ", not promoted"
            cells = [f"{r.metrics.get(n, math.nan):.3f}" for n in TABLED]
            lines.append(
                f"| {r.generation} | {verdict} | "
                + " | ".join(cells)
                + f" | {r.bank_size} | {r.labelled} | {r.synthetic_trained} | {r.fresh_human} "
                f"| {r.detector.get('distinct_1_pooled', math.nan):.3f} "
                f"| {r.detector.get('entropy', math.nan):.3f} "
                f"| {r.detector.get('vocab_coverage', math.nan):.3f} |"
            )
    lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots] + [""]
    return "\n".join(lines)


def _plots(results: Sequence[GenerationResult], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    policies = [p for p in POLICIES if any(r.policy == p for r in results)]
    titles = {name: metric_label(name) for name in PLOTTED}
    for name, title in [*titles.items(), ("bank_size", "Distinct replies the model can suggest")]:
        fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=110)
        for policy in policies:
            rows = sorted((r for r in results if r.policy == policy), key=lambda r: r.generation)
            values = [
                float(r.bank_size) if name == "bank_size" else r.metrics.get(name, float("nan"))
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
