from __future__ import annotations

import pytest
from celery.schedules import crontab

from worker.celery_app import celery_settings
from worker.settings import load_settings


def test_no_schedule_by_default() -> None:
    config = celery_settings(load_settings(environ={}))
    assert "beat_schedule" not in config
    # Acknowledged late, one at a time: a killed worker leaves its task queued.
    assert config["task_acks_late"] is True
    assert config["worker_prefetch_multiplier"] == 1


def test_a_cron_schedule_starts_generations() -> None:
    config = celery_settings(load_settings({"generation_schedule": "30 3 * * 1"}, environ={}))
    entry = config["beat_schedule"]["scheduled-generation"]
    assert entry["task"] == "replyguard.generation.scheduled"
    schedule = entry["schedule"]
    assert isinstance(schedule, crontab)
    assert schedule.minute == {30}
    assert schedule.hour == {3}
    assert schedule.day_of_week == {1}


def test_a_malformed_schedule_says_how_to_write_one() -> None:
    with pytest.raises(ValueError, match="five cron fields"):
        celery_settings(load_settings({"generation_schedule": "every monday"}, environ={}))
