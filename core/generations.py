"""The generation store: a generation's lock and status, and its stages' rows.

One generation runs at a time, across every web server and worker: while it is queued or
running its ``lock`` column holds :data:`ACTIVE`, and the column's unique constraint refuses a
second one (NULLs never collide, so finished generations hold nothing). Everything that
starts, ends or asks for the active generation goes through this module (worker/pipeline.py,
worker/promotion.py, core/reservoir.py, the dashboard), so the value lives here only.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.schema import Generation
from core.schema import GenerationStage
from core.schema import GenerationStatus
from core.schema import StageStatus

# The lock column's value while a generation is queued or running.
ACTIVE = "active"


def active_generation(session: Session) -> Generation | None:
    """The generation that is queued or running, or None."""
    return session.scalars(select(Generation).where(Generation.lock == ACTIVE)).one_or_none()


def holds_lock(generation: Generation) -> bool:
    """True while ``generation`` is the one queued or running."""
    return generation.lock == ACTIVE


def new_generation(number: int, actor: str) -> Generation:
    """A queued generation numbered ``number`` that holds the lock; adding it to a session
    whose database has another active generation fails at flush (IntegrityError)."""
    return Generation(number=number, requested_by=actor, lock=ACTIVE)


def reopen(generation: Generation) -> None:
    """A failed or interrupted generation runs again: running, holding the lock."""
    generation.status = GenerationStatus.RUNNING.value
    generation.lock = ACTIVE
    generation.error = ""
    generation.finished_at = None


def end_generation(generation: Generation, status: GenerationStatus, error: str = "") -> None:
    """The generation ends with a final ``status`` (passed, warned, blocked or failed) and
    ``error`` (for failed: ``"<stage>: <reason>"``), now; it frees the lock."""
    if status.active:
        raise ValueError(f"{status.value} is not a final status")
    generation.status = status.value
    generation.lock = None
    generation.finished_at = dt.datetime.now(dt.UTC)
    if error:
        generation.error = error


def stage_run(generation: Generation, stage: str) -> GenerationStage:
    """The row of ``stage`` of ``generation``, added (pending, never attempted) when the stage
    has none yet."""
    run = generation.stage_runs.get(stage)
    if run is None:
        # Every column set here: column defaults would only appear at the INSERT.
        run = generation.stage_runs[stage] = GenerationStage(
            stage=stage,
            status=StageStatus.PENDING.value,
            attempts=0,
            worker="",
            resumed_by="",
            progress=0.0,
            counts={},
            error="",
            data={},
        )
    return run


def record_progress(session: Session, generation_id: int, stage: str, fraction: float) -> None:
    """Set the progress (0 to 1) of a stage that has started: one row updated."""
    session.execute(
        update(GenerationStage)
        .where(GenerationStage.generation_id == generation_id, GenerationStage.stage == stage)
        .values(progress=round(fraction, 4))
    )


def start_run(generation: Generation, stage: str, worker: str) -> GenerationStage:
    """``stage`` of ``generation`` starts (again) now, run by ``worker`` ("host:pid"): the
    generation is running in it, and the stage's row counts the attempt and forgets what
    an earlier attempt recorded (who resumed it excepted)."""
    generation.status = GenerationStatus.RUNNING.value
    generation.stage = stage
    run = stage_run(generation, stage)
    run.status = StageStatus.RUNNING.value
    run.started_at = dt.datetime.now(dt.UTC)
    run.progress = 0.0
    run.attempts += 1
    run.worker = worker
    run.finished_at, run.seconds, run.counts, run.error, run.data = None, None, {}, "", {}
    return run


def finish_run(run: GenerationStage, counts: dict[str, Any], seconds: float) -> None:
    """The stage is done, now, after ``seconds`` (kept to the millisecond), with ``counts``."""
    run.status = StageStatus.DONE.value
    run.progress = 1.0
    run.finished_at = dt.datetime.now(dt.UTC)
    run.seconds = round(seconds, 3)
    run.counts = counts


def fail_run(run: GenerationStage, error: str) -> None:
    """The stage failed with ``error`` ("<exception class>: <message>")."""
    run.status = StageStatus.FAILED.value
    run.error = error


def reopen_run(run: GenerationStage, actor: str) -> None:
    """The stage will run again, as ``actor`` resumed the generation."""
    run.status = StageStatus.PENDING.value
    run.resumed_by = actor
