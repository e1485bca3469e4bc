"""A generation, stage by stage:

    snapshot -> synthesize -> encode -> filter -> deduplicate -> mix -> train -> evaluate
             -> gate -> promote

``PIPELINE`` below declares that order; each stage is a module of worker/stages/. This module
runs them: it starts, resumes and fails generations, and records each stage's start, progress,
counts, timing or error in its row of ``generation_stages`` (core/generations.py). Every stage
is safe to run twice: a stage that finished is skipped, and a stage that was interrupted
starts again from its own beginning. Nothing reaches production except through the last
stage, and only when the gate said pass or warn. The Celery tasks (``worker.tasks``), the
command line and the collapse experiment (``worker.simulation``, with some stages swapped
for its policy's) all run stages through :func:`run_stage`.
"""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.actions import Invalid
from core.generations import GenerationBusy
from core.generations import GenerationError
from core.generations import GenerationNotFound
from core.generations import active_generation
from core.generations import end_generation
from core.generations import fail_run
from core.generations import finish_run
from core.generations import get_generation
from core.generations import new_generation
from core.generations import next_number
from core.generations import record_progress
from core.generations import reopen
from core.generations import reopen_run
from core.generations import stage_run
from core.generations import start_run
from core.logs import log_context
from core.schema import Generation
from core.schema import GenerationStage
from core.schema import GenerationStatus
from core.schema import StageStatus
from models.registry import production
from worker.baseline import baseline_version
from worker.context import PipelineContext
from worker.notify import when_generation_ends
from worker.stages import DeduplicateStage
from worker.stages import EncodeStage
from worker.stages import EvaluateStage
from worker.stages import FilterStage
from worker.stages import GateStage
from worker.stages import MixStage
from worker.stages import PromoteStage
from worker.stages import SnapshotStage
from worker.stages import Stage
from worker.stages import SynthesizeStage
from worker.stages import TrainStage
from worker.stages.base import generation_dir

log = logging.getLogger(__name__)

# Progress is written at most this often, so a busy stage does not hammer the database.
PROGRESS_EVERY_SECONDS = 1.0


class Pipeline:
    """Stages in the order they run, each found by its name.

    Args:
        stages: the stages, in order; their names must differ.

    Raises:
        ValueError: two stages share a name.
    """

    def __init__(self, *stages: Stage) -> None:
        self.names = tuple(stage.name for stage in stages)
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"stage names repeat: {self.names}")
        self._stages = {stage.name: stage for stage in stages}

    def __getitem__(self, name: str) -> Stage:
        return self._stages[name]

    def with_stages(self, *replacements: Stage) -> Pipeline:
        """The same order with each of ``replacements`` in the place of the stage of its
        name (the collapse experiment's policies). Raises KeyError for a name not in it."""
        swapped = dict(self._stages)
        for stage in replacements:
            if stage.name not in swapped:
                raise KeyError(f"no stage {stage.name!r} to replace in {self.names}")
            swapped[stage.name] = stage
        return Pipeline(*(swapped[name] for name in self.names))

    def next_stage(self, runs: Mapping[str, GenerationStage]) -> str | None:
        """The first stage that is not done, by the generation's stage rows; None when every
        stage is."""
        for name in self.names:
            run = runs.get(name)
            if run is None or run.status != StageStatus.DONE.value:
                return name
        return None


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
    if baseline_version(ctx) is None:
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
        _refuse_while_running(ctx, generation, "resumed")
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
        _refuse_while_running(ctx, generation, "marked failed")
        end_generation(
            generation, GenerationStatus.FAILED, f"{generation.stage or 'queued'}: {reason}"
        )


# ---------------------------------------------------------------------------------------
# Running


def run_generation(ctx: PipelineContext, generation_id: int, pipeline: Pipeline = PIPELINE) -> str:
    """Run every remaining stage in this process; return the final status.

    Raises GenerationBusy when another live process is running a stage of it."""
    while run_next_stage(ctx, generation_id, pipeline) is not None:
        pass
    with ctx.db.session() as session:
        return get_generation(session, generation_id).status


def run_next_stage(
    ctx: PipelineContext, generation_id: int, pipeline: Pipeline = PIPELINE
) -> str | None:
    """Run the next unfinished stage; return its name, or None when nothing is left.

    Raises GenerationBusy when another live process is running a stage of the generation."""
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        if not GenerationStatus(generation.status).active:
            return None
        stage = pipeline.next_stage(generation.stage_runs)
    if stage is None:
        return None
    if not run_stage(ctx, generation_id, stage, pipeline):
        raise GenerationBusy(f"stage {stage} of generation id {generation_id} is running elsewhere")
    return stage


def run_stage(
    ctx: PipelineContext, generation_id: int, stage: str, pipeline: Pipeline = PIPELINE
) -> bool:
    """Run one stage of ``pipeline``, recording it; a stage that is done already is skipped.
    Every line it logs carries the generation's id and the stage (core/logs.py).

    Returns False, having done nothing, when another live process is running a stage of
    this generation (a second delivery of a task, a resume of a generation that was not
    interrupted): the caller must not queue the next stage, the running one will. True
    otherwise (the stage ran, or there was nothing to do). Re-raises what the stage raised,
    after recording the generation failed."""
    with log_context(generation_id=generation_id, stage=stage):
        with stage_guard(ctx, generation_id) as free:
            if not free:
                log.warning(
                    "stage %s not started: another process is running this generation", stage
                )
                return False
            attempt = begin_stage(ctx, generation_id, stage)
            if attempt is None:
                return True
            started = time.perf_counter()
            try:
                result = pipeline[stage].run(
                    ctx, generation_id, _ProgressReporter(ctx, generation_id, stage)
                )
            except BaseException as exc:
                fail_stage(ctx, generation_id, stage, exc, attempt)
                raise
            finish_stage(
                ctx,
                generation_id,
                stage,
                result.as_counts(),
                time.perf_counter() - started,
                attempt,
                ends_generation=stage == pipeline.names[-1],
            )
        return True


# How long a shared holder (an encode chunk) waits for the lock: resume and fail take it
# exclusively for an instant to see whether anyone holds it; a stage runner holds it for
# the whole stage, and a chunk that finds one is from a superseded encode run.
SHARED_WAIT_SECONDS = 5.0


@contextmanager
def stage_guard(ctx: PipelineContext, generation_id: int, shared: bool = False) -> Iterator[bool]:
    """The generation's stage lock, held while one of its stages runs: yields True when this
    process holds it, False when another live process does.

    An exclusive ``flock`` on ``<data folder>/generations/<id>/stage.lock``, which every
    worker shares with the data folder (artifacts and encode chunks live there too). The
    kernel releases it when its holder exits, however it exits (SIGKILL included), so
    "held" means "held by a live process" without heartbeats, and a task delivered again
    after its worker died takes the stage over.

    ``shared``: the encode stage's chunk tasks and its chord's callback, which run on any
    number of workers at once after the planning task let go of the exclusive lock, hold it
    shared, so that a resume or a fail (which try it exclusively) is refused while any of
    them runs. A shared holder waits up to SHARED_WAIT_SECONDS for an exclusive holder
    to let go. Raises OSError when the folder is not writable."""
    fd = os.open(generation_dir(ctx, generation_id) / "stage.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        mode = fcntl.LOCK_SH if shared else fcntl.LOCK_EX
        deadline = time.monotonic() + (SHARED_WAIT_SECONDS if shared else 0.0)
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)


def _refuse_while_running(ctx: PipelineContext, generation: Generation, action: str) -> None:
    """Raise GenerationBusy when a live process runs a stage of the generation: it was not
    interrupted, and ``action`` ("resumed", "marked failed") would race that process."""
    with stage_guard(ctx, generation.id) as free:
        if free:
            return
    run = generation.stage_runs.get(generation.stage)
    worker = run.worker if run is not None and run.worker else "?"
    if generation.stage == EncodeStage.name:
        # The chunks of the encode stage run on any workers, holding the lock shared.
        who, runs = f"in live workers, which encode its chunks (planned by {worker})", "they run"
    else:
        who, runs = f"in a live worker ({worker})", "that worker runs"
    raise GenerationBusy(
        f"generation {generation.number} (id {generation.id}) is running stage "
        f"{generation.stage} {who}: it cannot be {action} while {runs} it, and nothing was "
        f"interrupted. Wait for it (`replyguard generation show {generation.id}`); if a "
        "worker hangs, stop that worker, which frees the generation, then try again"
    )


def begin_stage(ctx: PipelineContext, generation_id: int, stage: str) -> int | None:
    """Record that a stage starts; return the number of this attempt (1, 2, ...), or None
    when there is nothing to do (done, or finished).

    The caller holds :func:`stage_guard`. A stage found ``running`` was interrupted (its
    process died and released the guard): it starts again from its beginning, and its
    record counts the attempt. The attempt number is what :func:`finish_stage` and
    :func:`fail_stage` are given back, so that a late completion of a superseded attempt
    (an encode chord whose generation was resumed meanwhile) records nothing."""
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        if not GenerationStatus(generation.status).active:
            return None
        run = generation.stage_runs.get(stage)
        if run is not None and run.status == StageStatus.DONE.value:
            return None
        attempt = start_run(generation, stage, f"{socket.gethostname()}:{os.getpid()}").attempts
    log.info("stage %s started", stage)
    return attempt


def current_attempt(session: Session, generation_id: int, stage: str, attempt: int) -> str:
    """Empty when attempt ``attempt`` of ``stage`` is the one running now; otherwise why it
    is not (the generation ended, the stage is done or was resumed, a later attempt runs),
    for the log line of a completion that is ignored."""
    generation = get_generation(session, generation_id)
    if not GenerationStatus(generation.status).active:
        return f"the generation is {generation.status}"
    run = generation.stage_runs.get(stage)
    if run is None or run.status != StageStatus.RUNNING.value:
        return f"the stage is {run.status if run is not None else 'not started'}"
    if run.attempts != attempt:
        return f"attempt {run.attempts} runs now"
    if generation.stage != stage:
        return f"the generation moved on to {generation.stage}"
    return ""


def finish_stage(
    ctx: PipelineContext,
    generation_id: int,
    stage: str,
    counts: dict[str, object],
    seconds: float,
    attempt: int | None = None,
    ends_generation: bool = False,
) -> bool:
    """Record a stage done after ``seconds`` with its ``counts``, and log it (the line's
    ``duration_ms`` and ``counts``, docs/operations.md); return True. ``ends_generation``:
    the stage (the last) recorded itself done when it ended the generation; only the line
    is logged.

    With ``attempt`` (what :func:`begin_stage` returned), only when that attempt is the
    one running (:func:`current_attempt`): a superseded run's late completion records
    nothing, is logged, and returns False, and its caller must not move the generation on."""
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        if attempt is not None:
            run = generation.stage_runs.get(stage)
            # A stage that ends the generation (promote) records itself done in the same
            # transaction as it ends it; the runner then has only the line to log. Any other
            # completion of a stage that is no longer running is late, and records nothing.
            if not (ends_generation and run is not None and run.attempts == attempt):
                stale = current_attempt(session, generation_id, stage, attempt)
                if stale:
                    log.warning(
                        "stage %s attempt %s finished late (%s): not recorded",
                        stage,
                        attempt,
                        stale,
                    )
                    return False
                finish_run(stage_run(generation, stage), dict(counts), seconds)
        else:
            finish_run(stage_run(generation, stage), dict(counts), seconds)
    log.info("stage %s done", stage, extra={"duration_ms": round(seconds * 1000), "counts": counts})
    return True


def fail_stage(
    ctx: PipelineContext,
    generation_id: int,
    stage: str,
    exc: BaseException,
    attempt: int | None = None,
) -> None:
    """Record the generation failed in ``stage`` because of ``exc``: it ends and frees the
    lock (``replyguard generation resume`` runs the stage again). With ``attempt``, only
    when that attempt is the one running: a superseded run's failure is logged only."""
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    with ctx.db.session() as session:
        if attempt is not None:
            stale = current_attempt(session, generation_id, stage, attempt)
            if stale:
                log.warning(
                    "stage %s attempt %s failed late (%s): %s; not recorded",
                    stage,
                    attempt,
                    stale,
                    reason,
                )
                return
        log.error("generation %s failed in %s: %s", generation_id, stage, reason)
        generation = get_generation(session, generation_id)
        when_generation_ends(session, ctx.settings, generation)
        end_generation(generation, GenerationStatus.FAILED, f"{stage}: {reason}")
        fail_run(stage_run(generation, stage), reason)


class _ProgressReporter:
    """A stage's :data:`~worker.stages.Progress`: writes the share done to the stage's row,
    at most every PROGRESS_EVERY_SECONDS (and always at 1)."""

    def __init__(self, ctx: PipelineContext, generation_id: int, stage: str) -> None:
        self.ctx, self.generation_id, self.stage = ctx, generation_id, stage
        self._written = 0.0

    def __call__(self, fraction: float) -> None:
        now = time.monotonic()
        if now - self._written < PROGRESS_EVERY_SECONDS and fraction < 1.0:
            return
        self._written = now
        with self.ctx.db.session() as session:
            record_progress(session, self.generation_id, self.stage, fraction)


def _busy_message(generation: Generation) -> str:
    where = f", stage {generation.stage}" if generation.stage else ""
    return (
        f"generation {generation.number} (id {generation.id}) is already {generation.status}"
        f"{where}: one generation runs at a time; wait for it, or `replyguard generation "
        f"show {generation.id}`"
    )
