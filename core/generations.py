"""The generation store: every query of the generations table and of its stages' rows, the
lock that lets one generation run at a time, a generation's status, and the errors raised
when a generation cannot be found, started or go on.

One generation runs at a time, across every web server and worker: while it is queued or
running its ``lock`` column holds :data:`ACTIVE`, and the column's unique constraint refuses a
second one (NULLs never collide, so finished generations hold nothing). Everything that
starts, ends or asks for the active generation goes through this module (worker/pipeline.py,
worker/promotion.py, core/reservoir.py, the dashboard), so the value lives here only.

The other modules read generations through the functions below (as Superset's DAOs serve
its models), never with queries of their own, so that how a generation is found is written
once; tests/test_generations.py checks that no module outside this one queries these tables.
A read that returns generations returns ORM rows attached to the caller's session, with
their stages' rows (``Generation.stage_runs``) loaded in one more round trip for all of them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.actions import Conflict
from core.actions import NotFound
from core.schema import Generation
from core.schema import GenerationStage
from core.schema import GenerationStatus
from core.schema import StageStatus

# The lock column's value while a generation is queued or running.
ACTIVE = "active"
# The statuses of generations whose candidate the promote stage made production.
PROMOTED = (GenerationStatus.PASSED.value, GenerationStatus.WARNED.value)
# The statuses of generations that have not ended.
UNFINISHED = (GenerationStatus.QUEUED.value, GenerationStatus.RUNNING.value)


class GenerationError(Conflict):
    """A generation cannot start or go on; the message says why and what to do."""


class GenerationBusy(GenerationError):
    """Another generation is queued or running."""

    code = "generation_running"


class GenerationNotFound(NotFound, GenerationError):
    """No generation has the id (or the number) given."""


# ---------------------------------------------------------------------------------------
# Reads


def get_generation(session: Session, generation_id: int) -> Generation:
    """The generation with id ``generation_id``.

    Raises:
        GenerationNotFound: there is none ("no generation with id <id>").
    """
    generation = session.get(Generation, generation_id)
    if generation is None:
        raise GenerationNotFound(f"no generation with id {generation_id}")
    return generation


def generation_numbered(session: Session, number: int) -> Generation:
    """The generation numbered ``number`` (0 is the clean baseline).

    Raises:
        GenerationNotFound: there is none ("no generation numbered <number>").
    """
    generation = session.scalars(
        select(Generation).where(Generation.number == number)
    ).one_or_none()
    if generation is None:
        raise GenerationNotFound(f"no generation numbered {number}")
    return generation


def active_generation(session: Session) -> Generation | None:
    """The generation that is queued or running, or None."""
    return session.scalars(select(Generation).where(Generation.lock == ACTIVE)).one_or_none()


def baseline_generation(session: Session) -> Generation | None:
    """Generation 0, the clean baseline (worker/baseline.py), or None before it is trained."""
    return session.scalars(select(Generation).where(Generation.number == 0)).one_or_none()


def baseline_version(session: Session) -> str | None:
    """The clean baseline's model version once generation 0 passed; None before (not
    trained yet, or its training still running or failed)."""
    row = baseline_generation(session)
    if row is None or row.status != GenerationStatus.PASSED.value:
        return None
    return row.candidate_version


def latest_generation(session: Session) -> Generation | None:
    """The generation with the highest number after the baseline, whatever its status; None
    when there is none (the baseline alone, or an empty database)."""
    return session.scalars(
        select(Generation).where(Generation.number > 0).order_by(Generation.number.desc()).limit(1)
    ).first()


def previous_generation(session: Session, number: int) -> Generation | None:
    """The generation numbered just below ``number`` (the highest number below it, whatever
    its status; the baseline for generation 1), or None when there is none."""
    return session.scalars(
        select(Generation)
        .where(Generation.number < number)
        .order_by(Generation.number.desc())
        .limit(1)
    ).first()


def promoted_before(session: Session, number: int) -> list[Generation]:
    """The generations numbered below ``number`` that passed or warned (their candidate was
    promoted), oldest first: the history the gate holds a candidate to. The baseline is one
    of them (it is recorded as passed)."""
    return list(
        session.scalars(
            select(Generation)
            .where(Generation.number < number, Generation.status.in_(PROMOTED))
            .order_by(Generation.number)
        )
    )


def newest_first(session: Session) -> list[Generation]:
    """Every generation, the baseline included, the highest number first (empty when there
    is none)."""
    return list(session.scalars(select(Generation).order_by(Generation.number.desc())))


def oldest_first(session: Session) -> list[Generation]:
    """Every generation, the baseline included, from generation 0 up (empty when there is
    none)."""
    return list(session.scalars(select(Generation).order_by(Generation.number)))


def generation_of(session: Session, version: str) -> Generation | None:
    """The generation whose candidate model version is ``version`` (for the baseline's
    version, generation 0), or None for a version no generation trained."""
    return session.scalars(
        select(Generation).where(Generation.candidate_version == version)
    ).one_or_none()


def generations_of(session: Session, versions: Iterable[str]) -> dict[str, Generation]:
    """:func:`generation_of` for many versions in one query: the generation of each of
    ``versions`` that a generation trained, by version (the others are left out)."""
    rows = session.scalars(
        select(Generation).where(Generation.candidate_version.in_(list(versions)))
    )
    # candidate_version is never NULL here (NULL matches no IN list); the condition only
    # narrows its type for the keys.
    return {g.candidate_version: g for g in rows if g.candidate_version is not None}


def next_number(session: Session) -> int:
    """The number the next generation gets: one more than the highest so far (1 when there is
    none, or only the baseline)."""
    return int(session.scalar(select(func.max(Generation.number))) or 0) + 1


def unfinished_ids(session: Session) -> list[int]:
    """The ids of the generations whose status is queued or running, by id (after a restore:
    those that were running when the backup was taken)."""
    return list(
        session.scalars(
            select(Generation.id).where(Generation.status.in_(UNFINISHED)).order_by(Generation.id)
        )
    )


def generation_statuses(session: Session) -> list[tuple[int, int, str]]:
    """``(id, number, status)`` of every generation after the baseline, in no particular
    order: these columns alone, for the /metrics scrape (webapp/observe.py), which reads them
    on every scrape and needs neither the evaluations nor the stages' rows."""
    rows = session.execute(
        select(Generation.id, Generation.number, Generation.status).where(Generation.number > 0)
    )
    return [(generation_id, number, status) for generation_id, number, status in rows]


def stage_seconds(session: Session, generation_ids: Iterable[int]) -> dict[int, dict[str, float]]:
    """The seconds each finished stage of the generations with ``generation_ids`` took
    (recorded by :func:`finish_run`): by generation id, then by stage in the order the stages
    started. Stages without recorded seconds, and so generations with no finished stage, are
    left out; no ids, no query."""
    found: dict[int, dict[str, float]] = {}
    ids = list(generation_ids)
    if not ids:
        return found
    rows = session.execute(
        select(GenerationStage.generation_id, GenerationStage.stage, GenerationStage.seconds)
        .where(
            GenerationStage.generation_id.in_(ids),
            GenerationStage.status == StageStatus.DONE.value,
        )
        .order_by(GenerationStage.id)
    )
    for generation_id, stage, seconds in rows:
        if seconds is not None:
            found.setdefault(generation_id, {})[stage] = seconds
    return found


# ---------------------------------------------------------------------------------------
# The lock, a generation's status and its stages' rows


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
