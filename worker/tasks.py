"""The Celery tasks: a generation's, one named task per stage, and a webhook delivery's.

Each stage's task runs its stage (idempotent, recorded in the database) and then queues the task of
the next stage, so any worker can pick up any stage, and a generation whose worker died can
be resumed from the stage it was in. Tasks are acknowledged late: a worker killed mid-stage
leaves the message to be delivered again (by Redis, after the visibility timeout of
worker/celery_app.py). A task delivered while another worker still runs a stage of the same
generation does nothing (worker.runs.stage_guard), so no stage runs twice at once.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import Mapping
from typing import Any

from celery import Task
from celery import chord
from celery import shared_task
from celery.signals import task_postrun
from celery.signals import task_prerun

from core import webhooks
from core.generations import get_generation
from core.logs import bind
from core.logs import unbind
from core.schema import GenerationStatus
from worker.broker import NOTIFY_TASK
from worker.celery_app import SOFT_LIMIT
from worker.celery_app import TIME_LIMIT
from worker.celery_app import pipeline_context
from worker.pipeline import PIPELINE
from worker.pipeline import STAGES
from worker.pipeline import GenerationBusy
from worker.pipeline import run_stage
from worker.pipeline import start_generation
from worker.runs import begin_stage
from worker.runs import current_attempt
from worker.runs import fail_stage
from worker.runs import finish_stage
from worker.runs import stage_guard
from worker.stages import EncodeStage
from worker.stages.encode import encode_chunk

log = logging.getLogger(__name__)

# Queuing the next stage waits this long for Redis to come back (a restart takes seconds):
# retries after 0, 1, 2, 3, 4 and then every 5 seconds, about a minute in all. After that the
# task fails, its stage stays done, and `replyguard generation resume` queues the next one.
PUBLISH_RETRY = {"max_retries": 15, "interval_start": 0, "interval_step": 1, "interval_max": 5}


def _stage_task(stage: str):  # type: ignore[no-untyped-def]
    @shared_task(
        name=f"replyguard.stage.{stage}",
        soft_time_limit=SOFT_LIMIT,
        time_limit=TIME_LIMIT,
        acks_late=True,
        reject_on_worker_lost=True,
    )
    def task(generation_id: int) -> str | None:
        ctx = pipeline_context()
        if not run_stage(ctx, generation_id, stage):
            return None  # another worker runs this generation and will move it on
        return advance(generation_id)

    return task


_ENCODE = EncodeStage()


@shared_task(
    name="replyguard.stage.encode",
    soft_time_limit=SOFT_LIMIT,
    time_limit=TIME_LIMIT,
    acks_late=True,
    reject_on_worker_lost=True,
)
def encode_stage(generation_id: int) -> int:
    """The encode stage (worker/stages/encode.py) shared out: plan the chunks, then fan them
    out to every worker; the chord's callback records the stage done, with the counts the
    plan gave (those of an inline run), and moves the generation on. Does nothing while
    another worker runs a stage of the generation.

    Every task of the chord carries the attempt it belongs to: the chunks and the callback
    hold the stage lock shared while they run (so `generation resume` and `fail` are
    refused meanwhile, runs.stage_guard), and those of an attempt that was superseded
    (the generation was resumed, or failed) do nothing."""
    ctx = pipeline_context()
    with stage_guard(ctx, generation_id) as free:
        if not free:
            return 0
        run = begin_stage(ctx, generation_id, _ENCODE.name)
        if run is not None:
            try:
                plan = _ENCODE.plan(run)
            except BaseException as exc:
                fail_stage(ctx, generation_id, _ENCODE.name, exc, run.attempt)
                raise
    if run is None:
        # Done already: move on once the lock is let go (the next stage's task, on any
        # worker, takes it, and would otherwise find it held and do nothing).
        advance(generation_id)
        return 0
    header = [
        encode_chunk_task.s(generation_id, index, run.attempt) for index in range(plan.chunks)
    ]
    callback = encode_done.si(generation_id, plan.as_counts(), time.time(), run.attempt)
    if header:
        chord(header)(callback)
    else:
        callback.delay()
    return plan.chunks


def _superseded(generation_id: int, attempt: int | None) -> str:
    """Why ``attempt`` of the encode stage is no longer the one running; empty when it is
    (or when a message from before attempts were carried has none)."""
    if attempt is None:
        return ""
    ctx = pipeline_context()
    with ctx.db.session() as session:
        return current_attempt(session, generation_id, _ENCODE.name, attempt)


@shared_task(
    name="replyguard.encode.chunk",
    soft_time_limit=SOFT_LIMIT,
    time_limit=TIME_LIMIT,
    acks_late=True,
    reject_on_worker_lost=True,
)
def encode_chunk_task(generation_id: int, index: int, attempt: int | None = None) -> int:
    """Encode one chunk of attempt ``attempt``'s plan, holding the stage lock shared; 0
    without encoding when that attempt was superseded (checked before and again under the
    lock, which a new attempt's planning task cannot take while this holds it)."""
    ctx = pipeline_context()
    if _superseded(generation_id, attempt):
        return 0
    with stage_guard(ctx, generation_id, shared=True) as held:
        stale = "a stage runs exclusively" if not held else _superseded(generation_id, attempt)
        if stale:
            log.warning("encode chunk %s of attempt %s skipped: %s", index, attempt, stale)
            return 0
        try:
            return encode_chunk(ctx, generation_id, index)
        except BaseException as exc:
            fail_stage(ctx, generation_id, _ENCODE.name, exc, attempt)
            raise


@shared_task(name="replyguard.encode.done", soft_time_limit=60, acks_late=True)
def encode_done(
    generation_id: int, counts: dict[str, Any], started: float, attempt: int | None = None
) -> str | None:
    """The chord's callback: records attempt ``attempt`` of the encode stage done and
    queues the next stage, unless that attempt was superseded meanwhile (then nothing: a
    late completion never records a stage that has moved on)."""
    ctx = pipeline_context()
    with stage_guard(ctx, generation_id, shared=True) as held:
        if not held:
            log.warning("encode attempt %s finished while a stage runs: not recorded", attempt)
            return None
        if not finish_stage(
            ctx, generation_id, _ENCODE.name, counts, time.time() - started, attempt
        ):
            return None
    # After the lock is let go: the next stage's task takes it exclusively.
    return advance(generation_id)


STAGE_TASKS = {
    stage: encode_stage if stage == _ENCODE.name else _stage_task(stage) for stage in STAGES
}

# The log fields bound for each running task, by task id (worker/tasks' own tasks only).
_bound: dict[str, contextvars.Token[Mapping[str, Any]]] = {}


@task_prerun.connect
def _bind_log_fields(task_id: str, task: Task, args: tuple[Any, ...], **_: Any) -> None:
    """Every line logged while a task of a generation runs, Celery's own "succeeded" line
    included, carries the generation's id and stage: each such task takes the id first and
    is named after its stage (``replyguard.stage.<stage>``, ``replyguard.encode.*``)."""
    kind, _, rest = task.name.removeprefix("replyguard.").partition(".")
    if kind in ("stage", "encode") and args:
        _bound[task_id] = bind(generation_id=args[0], stage=rest if kind == "stage" else kind)


@task_postrun.connect
def _unbind_log_fields(task_id: str, **_: Any) -> None:
    token = _bound.pop(task_id, None)
    if token is not None:
        unbind(token)


def advance(generation_id: int) -> str | None:
    """Queue the next unfinished stage of the generation; return its name.

    Waits out a short Redis outage (PUBLISH_RETRY); raises kombu's OperationalError when
    Redis stays away longer."""
    ctx = pipeline_context()
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        if not GenerationStatus(generation.status).active:
            return None
        stage = PIPELINE.next_stage(generation.stage_runs)
    if stage is not None:
        STAGE_TASKS[stage].apply_async((generation_id,), retry=True, retry_policy=PUBLISH_RETRY)
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


# Routed to NOTIFICATIONS_QUEUE by the task_routes of every app (worker/broker.py); a
# retry goes back to the queue it came from.
@shared_task(bind=True, name=NOTIFY_TASK, acks_late=True, max_retries=None, ignore_result=True)
def deliver(self: Any, delivery_pk: int) -> str:
    """One attempt of a webhook delivery (worker/notify.py queued it); on a failure that may
    pass, the same task again after the backoff, on the same queue. An attempt lasts at most
    ``notify_timeout_seconds`` (core/webhooks.py post). Returns the delivery's status."""
    ctx = pipeline_context()
    outcome = webhooks.attempt(ctx.db, ctx.settings, delivery_pk)
    if outcome.retry_in is not None:
        raise self.retry(countdown=outcome.retry_in)
    return outcome.status


__all__ = ["STAGE_TASKS", "advance", "deliver", "scheduled_generation"]
