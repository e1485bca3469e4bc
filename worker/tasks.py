"""The Celery tasks of a generation: one named task per stage.

Each task runs its stage (idempotent, recorded in the database) and then queues the task of
the next stage, so any worker can pick up any stage, and a generation whose worker died can
be resumed from the stage it was in. Tasks are acknowledged late: a worker killed mid-stage
leaves the message to be delivered again.
"""

from __future__ import annotations

import logging

from celery import shared_task

from worker.celery_app import pipeline_context
from worker.pipeline import STAGES
from worker.pipeline import GenerationBusy
from worker.pipeline import run_stage
from worker.pipeline import start_generation

log = logging.getLogger(__name__)

SOFT_LIMIT_MARGIN = 60


def _stage_task(stage: str):  # type: ignore[no-untyped-def]
    @shared_task(
        name=f"replyguard.stage.{stage}",
        soft_time_limit=3_600,
        time_limit=3_600 + SOFT_LIMIT_MARGIN,
        acks_late=True,
        reject_on_worker_lost=True,
    )
    def task(generation_id: int) -> str | None:
        ctx = pipeline_context()
        run_stage(ctx, generation_id, stage)
        return advance(generation_id)

    return task


STAGE_TASKS = {stage: _stage_task(stage) for stage in STAGES}


def advance(generation_id: int) -> str | None:
    """Queue the next unfinished stage of the generation; return its name."""
    from core.schema import Generation
    from core.schema import GenerationStatus
    from worker.pipeline import next_stage

    ctx = pipeline_context()
    with ctx.db.session() as session:
        generation = session.get_one(Generation, generation_id)
        if not GenerationStatus(generation.status).active:
            return None
        stage = next_stage(generation.stages)
    if stage is not None:
        STAGE_TASKS[stage].delay(generation_id)
    return stage


@shared_task(name="replyguard.generation.scheduled", acks_late=True)
def scheduled_generation() -> int | None:
    """Beat's entry point: start a generation unless one is running."""
    ctx = pipeline_context()
    try:
        generation_id = start_generation(ctx, actor="schedule")
    except GenerationBusy as exc:
        log.info("scheduled generation skipped: %s", exc)
        return None
    STAGE_TASKS[STAGES[0]].delay(generation_id)
    return generation_id


__all__ = ["STAGE_TASKS", "advance", "scheduled_generation"]
