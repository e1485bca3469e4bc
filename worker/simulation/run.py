"""Running the collapse experiment: the clean baseline trained once, then each policy's
generations on its own copy of the data folder, traffic arriving slice by slice; one
:class:`GenerationResult` per policy and generation, read from the typed records the
generations stored (safeguards.metrics.Evaluation, safeguards.gate.Decision)."""

from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from sqlalchemy import delete
from sqlalchemy import insert

from core.demo import DemoRow
from core.demo import demo_rows
from core.demo import load_examples
from core.demo import traffic_indices
from core.generations import generation_numbered
from core.ingest import ExampleIn
from core.ingest import FileExamples
from core.ingest import insert_examples
from core.ingest import read_examples
from core.provenance import Provenance
from core.schema import IncomingMessage
from models.artifact import read_manifest
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import get_version
from safeguards.detector import detector_metrics
from safeguards.gate import Decision
from safeguards.metrics import Evaluation
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.data import example_pools
from worker.pipeline import run_generation
from worker.pipeline import start_generation
from worker.settings import Settings
from worker.simulation.policies import ABLATION
from worker.simulation.policies import POLICY_PIPELINES
from worker.simulation.policies import Policy


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
        candidate = Evaluation.from_dict(generation.metrics["candidate"])
        # The gate judged every generation but the clean baseline, which passes by itself.
        judged = Decision.from_dict(generation.decision) if number > 0 else None
        reasons = list(judged.reasons if judged else generation.decision.get("reasons", []))
        version = get_version(session, generation.candidate_version or "")
        manifest = read_manifest(artifact_dir(ctx.settings, version))
        suggestions = Evaluation.from_dict(version.evaluation["evaluation"]).suggestions
        shown = [row[: ctx.settings.default_k] for row in suggestions]
        stages = generation.stages
        gold = [r.reply for r in example_pools(session).benchmark]
    counts = {
        name: stages.get(name, {}).get("counts", {}) for name in ("snapshot", "synthesize", "mix")
    }
    return GenerationResult(
        policy=policy,
        generation=number,
        metrics=candidate.values(),
        verdict=judged.verdict if judged else "pass",
        metric_verdicts={m.name: m.verdict for m in judged.metrics} if judged else {},
        reasons=reasons,
        promoted=promoted,
        bank_size=int(manifest["bank_size"]),
        training_examples=int(manifest.get("training", {}).get("examples", 0)),
        labelled=int(counts["snapshot"].get("prompts", 0)),
        written=int(counts["synthesize"].get("written", 0)),
        synthetic_trained=int(counts["mix"].get("synthetic", 0)),
        fresh_human=fresh_human,
        fresh_warning=judged is not None and judged.fresh_human_examples <= 0,
        detector=detector_metrics([t for row in shown for t in row], gold),
        seconds=round(seconds, 2),
    )
