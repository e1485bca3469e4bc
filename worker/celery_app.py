"""Celery wired to Flask, as in Flask's own Celery pattern.

``celery_init_app(app, ctx)`` builds the Celery app from ``app.config["CELERY"]`` with a task
base class that runs every task inside the Flask app's context; the web app calls it in its
factory (webapp.create_app), and Celery's own commands (worker, beat, Flower) build the
worker's Flask app here (:func:`create_worker_app`, loaded by worker/make_celery.py), so tasks
find the settings, database and encoder through ``current_app``. Tasks get ids, never ORM
objects. It also gives the notifications (worker/notify.py, which imports no Celery) their
queuer, :func:`queue_deliveries`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from celery import Celery
from celery import Task
from celery.schedules import crontab
from celery.signals import setup_logging
from flask import Flask
from flask import current_app
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

from core.logs import configure_logging
from worker.broker import NOTIFICATIONS_QUEUE
from worker.broker import NOTIFY_TASK
from worker.broker import celery_config
from worker.broker import ensure_broker
from worker.context import PipelineContext
from worker.notify import NotQueued
from worker.notify import set_queuer
from worker.settings import Settings
from worker.settings import load_settings

EXTENSION = "replyguard.worker"
# The modules that define tasks, imported by a worker when it starts (Celery's ``include``):
# a web process only sends tasks, by name.
TASK_MODULES = ("worker.tasks",)

# The time limits of a generation's tasks (worker/tasks.py). Generous: training on a large
# data set on a CPU takes a while.
SOFT_LIMIT = 3_600
SOFT_LIMIT_MARGIN = 60
TIME_LIMIT = SOFT_LIMIT + SOFT_LIMIT_MARGIN
# Redis hands a task that was delivered and not acknowledged (tasks are acknowledged when
# they end) to another worker after this many seconds: above the longest time limit, so a
# stage that runs within its limits is never delivered twice. Celery's solo pool, which
# `replyguard worker` runs, does not enforce time limits, so a stage may still outlive this;
# the stage guard (worker.runs.stage_guard) then keeps the second delivery from running
# it again while the first runs.
VISIBILITY_TIMEOUT = TIME_LIMIT + SOFT_LIMIT_MARGIN


def celery_init_app(app: Flask, ctx: PipelineContext) -> Celery:
    """Attach a Celery app, configured from ``app.config["CELERY"]``, to ``app``.

    Args:
        app: the Flask app whose context every task runs in.
        ctx: the runtime the tasks use (:func:`pipeline_context`).

    Returns:
        The Celery app, also ``app.extensions["celery"]``; its tasks are those of
        TASK_MODULES. The process's notifications are queued by :func:`queue_deliveries`
        from now on.
    """

    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask, include=TASK_MODULES)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    app.extensions[EXTENSION] = ctx
    set_queuer(queue_deliveries)
    return celery


def create_worker_app(overrides: Mapping[str, Any] | None = None) -> Flask:
    """The app that Celery's own commands (worker, beat, Flower) run tasks in: settings, the
    database and the pipeline's context. No web encoder, served model or routes (seconds and a
    few hundred MB saved per process), and none of the web processes' single-threaded tuning:
    a generation's encoding and searches want every core.

    Args:
        overrides: settings over the defaults and ``REPLYGUARD_*`` variables (tests).

    Returns:
        The Flask app; its Celery app is ``app.extensions["celery"]``.
    """
    settings = load_settings(overrides)
    app = Flask("replyguard")
    configure_logging(settings.log_level)
    # Celery's worker would put its own plain-text handlers on the root logger; a receiver
    # of this signal tells it that logging is taken care of. Its --loglevel still counts.
    setup_logging.connect(_worker_logging, weak=False)
    app.config["CELERY"] = celery_settings(settings)
    # The encoder loads when the first task needs it, with the workers' threads and cache.
    celery_init_app(app, PipelineContext.from_settings(settings))
    return app


def _worker_logging(loglevel: int | str | None = None, **_: Any) -> None:
    """Celery's ``setup_logging`` signal: our JSON lines at the level of ``--loglevel``."""
    level = logging.getLevelName(loglevel) if isinstance(loglevel, int) else loglevel
    configure_logging(level or "INFO")


def celery_settings(settings: Settings) -> dict[str, Any]:
    """``app.config["CELERY"]``: the broker, queue behaviour and the optional schedule."""
    config = celery_config(settings)
    config["broker_transport_options"] = {"visibility_timeout": VISIBILITY_TIMEOUT}
    if settings.generation_schedule:
        config["beat_schedule"] = {
            "scheduled-generation": {
                "task": "replyguard.generation.scheduled",
                "schedule": _crontab(settings.generation_schedule),
            }
        }
    return config


def _crontab(expression: str) -> crontab:
    fields = expression.split()
    if len(fields) != 5:
        raise ValueError(
            f"REPLYGUARD_GENERATION_SCHEDULE={expression!r}: give five cron fields "
            "(minute hour day-of-month month day-of-week), e.g. '0 3 * * 1'"
        )
    minute, hour, day_of_month, month, day_of_week = fields
    return crontab(minute, hour, day_of_week, day_of_month, month)


def pipeline_context() -> PipelineContext:
    ctx: PipelineContext = current_app.extensions[EXTENSION]
    return ctx


def sender(settings: Settings) -> Celery:
    """A Celery app that only sends tasks by name (the command line, the supervisor)."""
    return Celery("replyguard", config_source=celery_settings(settings))


def queue_deliveries(settings: Settings, delivery_ids: Sequence[int]) -> None:
    """The notifications' queuer (worker/notify.py): a delivery task per id, sent by name on
    the notifications queue, never the generations' (worker/broker.py).

    Raises:
        NotQueued: for the deliveries from the first that could not be queued on: Redis
            cannot be reached, or sending failed otherwise (the reason names the error).
    """
    app = sender(settings)
    sent = 0
    try:
        ensure_broker(app, settings)
        for pk in delivery_ids:
            # No result is kept: waiting on the result backend would block for its reconnect
            # retries (20 s) when Redis is down.
            app.send_task(
                NOTIFY_TASK, args=[pk], queue=NOTIFICATIONS_QUEUE, retry=False, ignore_result=True
            )
            sent += 1
    except (OperationalError, RedisError, OSError) as exc:
        reason = f"the task queue (Redis) is unreachable ({type(exc).__name__})"
        raise NotQueued(delivery_ids[sent:], reason) from None
    except Exception as exc:
        reason = f"queuing failed ({type(exc).__name__}: {exc})"
        raise NotQueued(delivery_ids[sent:], reason) from None
    finally:
        app.close()
