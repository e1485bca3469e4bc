"""Starting and resuming generations from outside a worker (web API, command line)."""

from __future__ import annotations

import logging

from celery import Celery
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from core.actions import Unavailable
from worker.broker import ensure_broker
from worker.context import PipelineContext
from worker.pipeline import GenerationError
from worker.pipeline import mark_failed
from worker.pipeline import resume_generation
from worker.pipeline import start_generation

log = logging.getLogger(__name__)


class QueueUnavailable(Unavailable, GenerationError):
    """Redis cannot be reached, so no generation can be queued."""

    code = "queue_unavailable"


def check_queue(celery: Celery, ctx: PipelineContext) -> None:
    """Fail fast, before anything is written, when the broker is unreachable."""
    try:
        ensure_broker(celery, ctx.settings)
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except (OperationalError, RedisError, OSError) as exc:
        raise QueueUnavailable(
            f"the task queue (Redis) is unreachable ({type(exc).__name__}): generations cannot "
            "start until it is back; suggestions and feedback keep working"
        ) from None


def queue_generation(celery: Celery, ctx: PipelineContext, actor: str) -> int:
    """Create the next generation and queue its first stage; return its id.

    Every front end starts generations here. Raises QueueUnavailable (Redis down), and what
    start_generation raises: GenerationBusy (one runs already) or GenerationError (no
    production model or clean baseline)."""
    check_queue(celery, ctx)
    generation_id = start_generation(ctx, actor)
    _send(celery, ctx, generation_id, "snapshot")
    return generation_id


def queue_resume(
    celery: Celery, ctx: PipelineContext, generation_id: int, actor: str
) -> str | None:
    """Make a failed or interrupted generation runnable again and queue the stage it stopped
    in; return that stage. Raises QueueUnavailable, and what resume_generation raises."""
    check_queue(celery, ctx)
    stage = resume_generation(ctx, generation_id, actor)
    if stage is not None:
        _send(celery, ctx, generation_id, stage)
    return stage


def _send(celery: Celery, ctx: PipelineContext, generation_id: int, stage: str) -> None:
    try:
        celery.send_task(f"replyguard.stage.{stage}", args=[generation_id], retry=False)
    except (OperationalError, RedisError, OSError) as exc:
        mark_failed(ctx, generation_id, f"could not be queued: {type(exc).__name__}")
        raise QueueUnavailable(
            "the task queue (Redis) went away while queuing the generation; it is marked "
            "failed: start a new one when Redis is back"
        ) from None
