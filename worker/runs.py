"""A stage run's bookkeeping, for the runner (worker/pipeline.py) and the encode stage's
Celery tasks (worker/tasks.py): the generation's stage lock held while a stage runs
(:func:`stage_guard`), and the stage's row of ``generation_stages`` (core/generations.py)
as the run goes: its start (which hands the stage its :class:`GenerationRun`), progress,
end or failure, each of them only for the attempt that runs now."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.orm import Session

from core.generations import GenerationBusy
from core.generations import end_generation
from core.generations import fail_run
from core.generations import finish_run
from core.generations import get_generation
from core.generations import record_progress
from core.generations import stage_run
from core.generations import start_run
from core.logs import log_context
from core.schema import Generation
from core.schema import GenerationStatus
from core.schema import StageStatus
from worker.context import PipelineContext
from worker.data import ExamplePools
from worker.notify import when_generation_ends
from worker.stages import EncodeStage
from worker.stages.base import GenerationRun
from worker.stages.base import Pipeline
from worker.stages.base import generation_dir

# The runner's lines ("stage train started", "... done") under the runner's name, which
# docs/operations.md documents and log queries select on.
log = logging.getLogger("worker.pipeline")

# Progress is written at most this often, so a busy stage does not hammer the database.
PROGRESS_EVERY_SECONDS = 1.0


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


def refuse_while_running(ctx: PipelineContext, generation: Generation, action: str) -> None:
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


def begin_stage(
    ctx: PipelineContext,
    generation_id: int,
    stage: str | None = None,
    *,
    pipeline: Pipeline | None = None,
    pools: dict[int, ExamplePools] | None = None,
) -> GenerationRun | None:
    """Record that ``stage`` (None: the next unfinished stage of ``pipeline``, then
    required) starts;
    return its :class:`GenerationRun`, read in the same transaction, or None when there is
    nothing to do (done, or finished). ``pools``: examples read already, to share.

    The caller holds :func:`stage_guard`. A stage found ``running`` was interrupted (its
    process died and released the guard): it starts again from its beginning, and its
    record counts the attempt. The run's ``attempt`` (1, 2, ...) is what
    :func:`finish_stage` and :func:`fail_stage` are given back, so that a late completion
    of a superseded attempt (an encode chord whose generation was resumed meanwhile)
    records nothing."""
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        if not GenerationStatus(generation.status).active:
            return None
        if stage is None and pipeline is None:
            raise ValueError("begin_stage needs a stage or a pipeline")
        name = stage or pipeline.next_stage(generation.stage_runs)  # type: ignore[union-attr]
        if name is None:
            return None
        row = generation.stage_runs.get(name)
        if row is not None and row.status == StageStatus.DONE.value:
            return None
        attempt = start_run(generation, name, f"{socket.gethostname()}:{os.getpid()}").attempts
        run = GenerationRun.of(
            ctx, generation, name, attempt, _ProgressReporter(ctx, generation_id, name), pools
        )
    # Bound here too: a caller that asked for the next stage did not know which it would be.
    with log_context(stage=name):
        log.info("stage %s started", name)
    return run


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
    recorded: bool = False,
) -> bool:
    """Record a stage done after ``seconds`` with its ``counts``, and log it (the line's
    ``duration_ms`` and ``counts``, docs/operations.md); return True. ``recorded``: the
    stage recorded itself done as it ended the generation
    (:meth:`GenerationRun.record_done`); only the line is logged.

    With ``attempt`` (the run's, :func:`begin_stage`), only when that attempt is the one
    running (:func:`current_attempt`): a superseded run's late completion records nothing,
    is logged, and returns False, and its caller must not move the generation on."""
    if not recorded:
        with ctx.db.session() as session:
            stale = current_attempt(session, generation_id, stage, attempt) if attempt else ""
            if stale:
                log.warning(
                    "stage %s attempt %s finished late (%s): not recorded", stage, attempt, stale
                )
                return False
            finish_run(
                stage_run(get_generation(session, generation_id), stage), dict(counts), seconds
            )
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
