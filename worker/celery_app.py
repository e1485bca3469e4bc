"""Celery wired to Flask, as in Flask's own Celery pattern.

``celery_init_app(app)`` builds the Celery app from ``app.config["CELERY"]`` with a task base
class that runs every task inside the Flask app's context; the web app calls it in its
factory, and the worker process (``replyguard worker``) builds the same Flask app, so tasks
find the settings, database and encoder through ``current_app``. Tasks get ids, never ORM
objects.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery import Task
from celery.schedules import crontab
from flask import Flask
from flask import current_app

from worker.broker import celery_config
from worker.context import PipelineContext
from worker.settings import Settings

EXTENSION = "replyguard.worker"

# The time limits of a generation's tasks (worker/tasks.py). Generous: training on a large
# data set on a CPU takes a while.
SOFT_LIMIT = 3_600
SOFT_LIMIT_MARGIN = 60
TIME_LIMIT = SOFT_LIMIT + SOFT_LIMIT_MARGIN
# Redis hands a task that was delivered and not acknowledged (tasks are acknowledged when
# they end) to another worker after this many seconds: above the longest time limit, so a
# stage that runs within its limits is never delivered twice. Celery's solo pool, which
# `replyguard worker` runs, does not enforce time limits, so a stage may still outlive this;
# the stage guard (worker.pipeline.stage_guard) then keeps the second delivery from running
# it again while the first runs.
VISIBILITY_TIMEOUT = TIME_LIMIT + SOFT_LIMIT_MARGIN


def celery_init_app(app: Flask, ctx: PipelineContext) -> Celery:
    class FlaskTask(Task):  # type: ignore[misc]
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery = Celery(app.name, task_cls=FlaskTask)
    celery.config_from_object(app.config["CELERY"])
    celery.set_default()
    app.extensions["celery"] = celery
    app.extensions[EXTENSION] = ctx
    # Registers the tasks with this app.
    import worker.notify
    import worker.tasks  # noqa: F401

    return celery


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
