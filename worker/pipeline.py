"""A generation, stage by stage:

    snapshot -> synthesize -> encode -> filter -> deduplicate -> mix -> train -> evaluate
             -> gate -> promote

``PIPELINE`` below declares that order; each stage is a module of worker/stages/. This module
runs them: it starts, resumes and fails generations, and runs a stage: under the generation's
lock, it records the stage started (which hands the stage its ``GenerationRun``), runs it,
passes its fault point, and records it done or the generation failed (the bookkeeping is
worker/runs.py's). Every stage is safe to run twice: a stage that finished is skipped, and a
stage that was interrupted starts again from its own beginning. Nothing reaches production except through the last
stage, and only when the gate said pass or warn. The Celery tasks (``worker.tasks``), the
command line and the collapse experiment (``worker.simulation``, with some stages swapped
for its policy's) all run stages through :func:`run_stage`.
"""

from __future__ import annotations

import logging
import time

from sqlalchemy.exc import IntegrityError

from core.actions import Invalid
from core.generations import GenerationBusy
from core.generations import GenerationError
from core.generations import GenerationNotFound
from core.generations import active_generation
from core.generations import baseline_version
from core.generations import end_generation
from core.generations import get_generation
from core.generations import new_generation
from core.generations import next_number
from core.generations import reopen
from core.generations import reopen_run
from core.logs import log_context
from core.schema import Generation
from core.schema import GenerationStatus
from models.registry import production
from worker.context import PipelineContext
from worker.data import ExamplePools
from worker.faults import fault_point
from worker.notify import when_generation_ends
from worker.runs import begin_stage
from worker.runs import fail_stage
from worker.runs import finish_stage
from worker.runs import refuse_while_running
from worker.runs import stage_guard
from worker.stages import DeduplicateStage
from worker.stages import EncodeStage
from worker.stages import EvaluateStage
from worker.stages import FilterStage
from worker.stages import GateStage
from worker.stages import MixStage
from worker.stages import PromoteStage
from worker.stages import SnapshotStage
from worker.stages import SynthesizeStage
from worker.stages import TrainStage
from worker.stages.base import Pipeline

log = logging.getLogger(__name__)


PIPELINE = Pipeline(
    SnapshotStage(),  # freeze the data watermark, the parent model and the prompts
    SynthesizeStage(),  # production writes a reply to each prompt it would answer
    EncodeStage(),  # embed every text the next stages compare
    FilterStage(),  # the quality rules remove replies
    DeduplicateStage(),  # near-duplicates are removed
    MixStage(),  # every human example and capped synthetic ones: the training set
    TrainStage(),  # the candidate, from production's weights
    EvaluateStage(),  # candidate, production and clean baseline on the benchmark
    GateStage(),  # pass, warn or block
    PromoteStage(),  # production changes here only, on pass or warn
)
STAGES = PIPELINE.names

__all__ = [
    "PIPELINE",
    "STAGES",
    "GenerationBusy",
    "GenerationError",
    "GenerationNotFound",
    "Pipeline",
    "mark_failed",
    "resume_generation",
    "run_generation",
    "run_next_stage",
    "run_stage",
    "stage_guard",
    "start_generation",
]


# ---------------------------------------------------------------------------------------
# Starting, resuming, failing


def start_generation(ctx: PipelineContext, actor: str) -> int:
    """Create the next generation (queued) and return its id; one at a time.

    Raises GenerationBusy while another generation is queued or running, and
    GenerationError when there is no production model or no clean baseline."""
    with ctx.db.session() as session:
        if production(session) is None:
            raise GenerationError(
                "no production model: train the clean baseline first "
                "(`replyguard models train-baseline`)"
            )
        running = active_generation(session)
        if running is not None:
            raise GenerationBusy(_busy_message(running))
        number = next_number(session)
        if baseline_version(session) is None:
            raise GenerationError(
                "no clean baseline (generation 0): `replyguard models train-baseline`"
            )
    try:
        with ctx.db.session() as session:
            generation = new_generation(number, actor)
            session.add(generation)
            session.flush()
            return generation.id
    except IntegrityError:
        # Lost a race with another start: the unique lock column refused the second one.
        with ctx.db.session() as session:
            running = active_generation(session)
            raise GenerationBusy(
                _busy_message(running) if running else "another generation just started"
            ) from None


def resume_generation(
    ctx: PipelineContext, generation_id: int, actor: str, pipeline: Pipeline = PIPELINE
) -> str | None:
    """Make a failed or interrupted generation runnable again; return the stage to run.

    Raises GenerationNotFound; GenerationError for a generation that finished;
    GenerationBusy when another generation is active, or when a live process is running a
    stage of this one (:func:`stage_guard`): it is not interrupted."""
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        status = GenerationStatus(generation.status)
        if status in (GenerationStatus.PASSED, GenerationStatus.WARNED, GenerationStatus.BLOCKED):
            raise GenerationError(f"generation {generation.number} finished ({status.value})")
        other = active_generation(session)
        if other is not None and other.id != generation.id:
            raise GenerationBusy(_busy_message(other))
        refuse_while_running(ctx, generation, "resumed")
        reopen(generation)
        stage = pipeline.next_stage(generation.stage_runs)
        if stage is not None and stage in generation.stage_runs:
            reopen_run(generation.stage_runs[stage], actor)
    return stage


def mark_failed(ctx: PipelineContext, generation_id: int, reason: str) -> None:
    """Give up on a generation (for example after its worker died): production is untouched
    and its synthetic rows stay out of the training data.

    Raises Invalid without a reason, GenerationNotFound, GenerationError for a generation
    that finished, and GenerationBusy while a live process runs a stage of it (its promote
    stage could still end it otherwise)."""
    if not reason.strip():
        raise Invalid("marking a generation failed needs a reason")
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        when_generation_ends(session, ctx.settings, generation)
        if not GenerationStatus(generation.status).active and generation.status != "failed":
            raise GenerationError(f"generation {generation.number} finished ({generation.status})")
        refuse_while_running(ctx, generation, "marked failed")
        end_generation(
            generation, GenerationStatus.FAILED, f"{generation.stage or 'queued'}: {reason}"
        )


# ---------------------------------------------------------------------------------------
# Running


def run_generation(ctx: PipelineContext, generation_id: int, pipeline: Pipeline = PIPELINE) -> str:
    """Run every remaining stage in this process; return the final status. The stages share
    the examples they read (:meth:`GenerationRun.examples`).

    Raises GenerationBusy when another live process is running a stage of it."""
    pools: dict[int, ExamplePools] = {}
    while run_next_stage(ctx, generation_id, pipeline, pools) is not None:
        pass
    with ctx.db.session() as session:
        return get_generation(session, generation_id).status


def run_next_stage(
    ctx: PipelineContext,
    generation_id: int,
    pipeline: Pipeline = PIPELINE,
    pools: dict[int, ExamplePools] | None = None,
) -> str | None:
    """Run the next unfinished stage; return its name, or None when nothing is left.
    ``pools``: the examples read by the stages run before (:class:`GenerationRun`).

    Raises GenerationBusy when another live process is running a stage of the generation."""
    ran = _run_guarded(ctx, generation_id, pipeline, None, pools)
    if ran is _BUSY:
        raise GenerationBusy(f"a stage of generation id {generation_id} is running elsewhere")
    return ran


def run_stage(
    ctx: PipelineContext, generation_id: int, stage: str, pipeline: Pipeline = PIPELINE
) -> bool:
    """Run one stage of ``pipeline``, recording it; a stage that is done already is skipped.

    Returns False, having done nothing, when another live process is running a stage of
    this generation (a second delivery of a task, a resume of a generation that was not
    interrupted): the caller must not queue the next stage, the running one will. True
    otherwise (the stage ran, or there was nothing to do). Re-raises what the stage raised,
    after recording the generation failed."""
    return _run_guarded(ctx, generation_id, pipeline, stage, None) is not _BUSY


# What :func:`_run_guarded` returns when another live process holds the stage guard.
_BUSY = "<busy>"


def _run_guarded(
    ctx: PipelineContext,
    generation_id: int,
    pipeline: Pipeline,
    stage: str | None,
    pools: dict[int, ExamplePools] | None,
) -> str | None:
    """Under the stage guard: begin ``stage`` (None: the next unfinished one), run it, pass
    its fault point, record it done (or the generation failed, and re-raise). Every line it
    logs carries the generation's id and the stage (core/logs.py).

    Returns the stage run; None when there was nothing to run; ``_BUSY`` when another live
    process holds the guard (nothing done)."""
    with log_context(generation_id=generation_id, **({"stage": stage} if stage else {})):
        with stage_guard(ctx, generation_id) as free:
            if not free:
                log.warning(
                    "stage %s not started: another process runs this generation",
                    stage or "(the next)",
                )
                return _BUSY
            run = begin_stage(ctx, generation_id, stage, pipeline=pipeline, pools=pools)
            if run is None:
                return None
            with log_context(stage=run.stage):
                started = time.perf_counter()
                try:
                    result = pipeline[run.stage].run(run)
                    if not run.recorded:
                        # The stage's work is written and the stage not yet recorded done:
                        # where a kill must lose nothing (worker/faults.py).
                        fault_point(ctx.settings.data_dir, run.stage)
                except BaseException as exc:
                    fail_stage(ctx, generation_id, run.stage, exc, run.attempt)
                    raise
                finish_stage(
                    ctx,
                    generation_id,
                    run.stage,
                    result.as_counts(),
                    time.perf_counter() - started,
                    run.attempt,
                    recorded=run.recorded,
                )
        return run.stage


def _busy_message(generation: Generation) -> str:
    where = f", stage {generation.stage}" if generation.stage else ""
    return (
        f"generation {generation.number} (id {generation.id}) is already {generation.status}"
        f"{where}: one generation runs at a time; wait for it, or `replyguard generation "
        f"show {generation.id}`"
    )
