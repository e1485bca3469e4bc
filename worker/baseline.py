"""Generation 0: the clean baseline, trained on human examples only.

Every later generation is compared against it, so it is trained once and stays pinned. It
is a generation of its own short pipeline, run by the same runner as every generation
(worker/pipeline.py), so each of its stages is recorded, and one that fails or is killed is
resumed where it stopped:

    snapshot -> train -> evaluate -> pin
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func
from sqlalchemy import select

from core.actions import Conflict
from core.generations import baseline_generation
from core.generations import end_generation
from core.generations import get_generation
from core.generations import new_generation
from core.provenance import Provenance
from core.reservoir import ensure_anchor
from core.reservoir import ensure_benchmark
from core.schema import Example
from core.schema import GenerationStatus
from core.schema import ModelVersion
from models.registry import get_version
from models.registry import production
from models.registry import promote
from models.registry import register
from models.training import train_model
from models.training import training_metadata
from worker.context import PipelineContext
from worker.evaluation import VersionEvaluator
from worker.pipeline import resume_generation
from worker.pipeline import run_generation
from worker.stages.base import Counts
from worker.stages.base import GenerationRun
from worker.stages.base import Pipeline
from worker.stages.evaluate import EvaluateCounts
from worker.stages.records import SNAPSHOT
from worker.stages.records import Snapshot
from worker.stages.train import record_candidate


class NoTrainingData(Conflict):
    """The clean baseline cannot be trained now: it exists already, or there is no human
    example to train on; the message says what to run first."""


NO_HUMAN_EXAMPLES = (
    "no human examples to train on: run `replyguard data load-demo` or "
    "`replyguard data import FILE --provenance human` first"
)


@dataclass(frozen=True)
class BaselineSnapshotCounts(Counts):
    watermark: int
    human: int
    benchmark: int


@dataclass(frozen=True)
class BaselineTrainCounts(Counts):
    examples: int
    bank_size: int
    candidate: str
    # What training chose and calibrated (printed by `replyguard models train-baseline`).
    weights: dict[str, float]
    held_out_coverage: float
    triggering_threshold: float


@dataclass(frozen=True)
class PinCounts(Counts):
    # Whether it became production (only when nothing was).
    promoted: bool


class BaselineSnapshot:
    name = SNAPSHOT
    label = "Setting the benchmark and the anchor aside"

    def run(self, run: GenerationRun) -> BaselineSnapshotCounts:
        """Set the benchmark and the anchor aside (core.reservoir: once, then kept) and
        freeze the watermark. Raises NoTrainingData when no human example is left to train
        on."""
        with run.ctx.db.session() as session:
            ensure_benchmark(session, run.ctx.settings)
            ensure_anchor(session, run.ctx.settings)
            watermark = int(session.scalar(select(func.max(Example.id))) or 0)
        pools = run.examples(watermark)
        if not pools.human:
            raise NoTrainingData(NO_HUMAN_EXAMPLES)
        with run.ctx.db.session() as session:
            run.generation(session).stage_runs[SNAPSHOT].data = Snapshot(watermark, ()).to_data()
        return BaselineSnapshotCounts(watermark, len(pools.human), len(pools.benchmark))


class BaselineTrain:
    name = "train"
    label = "Training on human data only"

    def run(self, run: GenerationRun) -> BaselineTrainCounts:
        """Train on every human example up to the watermark (the benchmark held out) and
        register the model as generation 0's candidate."""
        pools = run.examples()
        examples = [r.for_training() for r in pools.human]
        model, report = train_model(
            run.ctx.encoder,
            examples,
            config=run.ctx.training_config(),
            show_progress=run.ctx.show_progress,
        )
        metadata = training_metadata(examples, report, benchmark_examples=len(pools.benchmark))
        version = register(
            run.ctx.db,
            run.ctx.settings,
            model,
            generation=0,
            parent=None,
            metadata=metadata,
            record=record_candidate(run.generation_id),
        )
        return BaselineTrainCounts(
            examples=len(examples),
            bank_size=report.bank_size,
            candidate=version.version,
            weights=report.weights.as_dict(),
            held_out_coverage=report.triggering.held_out_coverage,
            triggering_threshold=report.triggering.threshold,
        )


class BaselineEvaluate:
    name = "evaluate"
    label = "Evaluation on the benchmark"

    def run(self, run: GenerationRun) -> EvaluateCounts:
        """Evaluate the candidate on the benchmark and store it as the generation's
        ``candidate`` metrics (what every later gate compares with the baseline's)."""
        evaluation = VersionEvaluator(run.ctx, run.examples())(run.candidate_version or "")
        with run.ctx.db.session() as session:
            run.generation(session).metrics = {
                "candidate": evaluation.to_dict(include_suggestions=False)
            }
        return EvaluateCounts({"candidate": evaluation.value(evaluation.primary)})


class Pin:
    name = "pin"
    label = "Pinned as the clean baseline"

    def run(self, run: GenerationRun) -> PinCounts:
        """Pass generation 0, and promote its model when nothing is in production yet, in
        one transaction that ends the generation."""
        with run.ctx.db.session() as session:
            generation = run.generation(session)
            version = generation.candidate_version or ""
            generation.decision = {
                "verdict": "pass",
                "reasons": ["The clean baseline: human data only."],
            }
            promoted = production(session) is None
            if promoted:
                promote(session, run.ctx.settings, version, generation.requested_by, FIRST_MODEL)
            end_generation(generation, GenerationStatus.PASSED)
            # Shown as "done" wherever generations are listed, as it always was.
            generation.stage = "done"
            run.record_done(session, generation, PinCounts(promoted))
        return PinCounts(promoted)


FIRST_MODEL = "first model: the clean baseline"
BASELINE_PIPELINE = Pipeline(
    BaselineSnapshot(),  # the benchmark and the anchor set aside, the watermark frozen
    BaselineTrain(),  # every other human example up to it, nothing else
    BaselineEvaluate(),  # on the benchmark: what every gate compares with
    Pin(),  # passed, and production when nothing is
)


def train_baseline(ctx: PipelineContext, actor: str) -> tuple[ModelVersion, BaselineTrainCounts]:
    """Set the benchmark aside, train on the other human examples, register generation 0,
    evaluate it, and promote it when nothing is in production yet; a baseline whose
    training failed or was interrupted is resumed where it stopped.

    Args:
        ctx: the process's settings, database and encoder.
        actor: who asked (the generation's ``requested_by``, the promotion's audit entry).

    Returns:
        The baseline's version (production when nothing was) and its train stage's counts.

    Raises:
        NoTrainingData: the baseline exists already, or there is no human example.
        GenerationBusy: another process is running it.
    """
    with ctx.db.session() as session:
        row = baseline_generation(session)
        if row is None and not session.scalar(
            select(func.count(Example.id)).where(Example.provenance == Provenance.HUMAN.value)
        ):
            # Refused before generation 0 exists, so an empty data folder keeps none.
            raise NoTrainingData(NO_HUMAN_EXAMPLES)
        if row is None:
            row = new_generation(0, actor)
            session.add(row)
            session.flush()
        elif row.status == GenerationStatus.PASSED.value:
            raise NoTrainingData("the clean baseline exists already; it is trained once")
        generation_id, unfinished = row.id, row.status != GenerationStatus.QUEUED.value
    if unfinished:
        resume_generation(ctx, generation_id, actor, BASELINE_PIPELINE)
    run_generation(ctx, generation_id, BASELINE_PIPELINE)
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        version = get_version(session, generation.candidate_version or "")
        counts = generation.stage_runs[BaselineTrain.name].counts
    return version, BaselineTrainCounts(**counts)
