"""Observability: GET /metrics (webapp/observe.py, webapp/metrics.py), request ids and JSON
log lines (core/logs.py), in the Flask test client and through a real gunicorn server with
two workers."""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from apiflask import APIFlask
from flask.testing import FlaskClient
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from core.db import Database
from core.keys import create_key
from core.logs import configure_logging
from core.metrics_files import metrics_folder
from core.schema import Generation
from core.schema import Role
from core.settings import SettingsError
from models.registry import production
from models.registry import promote
from tests.helpers import gunicorn
from tests.helpers import make_settings
from tests.test_api import error_of
from tests.test_serving import new_candidate
from webapp.observe import EXTENSION
from webapp.observe import VERDICTS
from webapp.observe import DatabaseCollector
from worker.pipeline import STAGES
from worker.pipeline import run_generation
from worker.pipeline import start_generation

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SUGGEST = "/v1/suggestions"


def parse(text: str) -> Samples:
    """Every sample of a /metrics answer, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """One sample's value; 0 when the series is absent (nothing counted yet)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(client: FlaskClient, **kwargs: Any) -> Samples:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain")
    return parse(response.get_data(as_text=True))


def requests_to(
    samples: Samples, endpoint: str, status: str = "200", method: str = "POST"
) -> float:
    return value(
        samples, "replyguard_http_requests_total", endpoint=endpoint, method=method, status=status
    )


def settings_of(app: APIFlask, **overrides: Any) -> None:
    """Change the running app's settings (each request reads them)."""
    svc = app.extensions["replyguard"]
    svc.pipeline.settings = svc.settings.with_overrides(**overrides)


@pytest.fixture
def uncached(app: APIFlask) -> APIFlask:
    """The app, its /metrics reading the database on every scrape."""
    app.extensions[EXTENSION].cache_seconds = 0
    return app


@pytest.fixture
def log_lines() -> Iterator[io.StringIO]:
    """This process's log lines, as configure_logging writes them, in a buffer."""
    buffer = io.StringIO()
    handler = configure_logging("INFO", buffer)
    yield buffer
    logging.getLogger().removeHandler(handler)


def records(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


# --- In one process (the Flask test client) ---------------------------------------------------


def test_suggestions_are_counted_as_served_or_abstained(
    client: FlaskClient, client_headers: dict[str, str]
) -> None:
    before = scrape(client)
    # A greeting the demo corpus answers, and text no chat intent answers.
    messages = [
        "Hello",
        "Good morning",
        "the derivative of x squared is two x",
        "the derivative of x squared is two x",
        "Hello",
    ]
    triggered = []
    for message in messages:
        response = client.post(SUGGEST, json={"message": message}, headers=client_headers)
        assert response.status_code == 200
        triggered.append(response.json["triggered"])
    assert True in triggered and False in triggered
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("replyguard_suggestions_total", outcome="served") == triggered.count(True)
    assert delta("replyguard_suggestions_total", outcome="abstained") == triggered.count(False)
    assert (
        delta("replyguard_http_requests_total", endpoint=SUGGEST, method="POST", status="200") == 5
    )
    assert (
        delta(
            "replyguard_http_request_duration_seconds_count",
            endpoint=SUGGEST,
            method="POST",
            status="200",
        )
        == 5
    )
    # One request at a time: each is a batch of one.
    assert delta("replyguard_suggestion_batch_size_count") == 5
    assert delta("replyguard_suggestion_batch_size_sum") == 5


def test_feedback_is_counted_by_kind_and_duplicates(
    client: FlaskClient, client_headers: dict[str, str]
) -> None:
    before = scrape(client)
    chosen = {"message": "metrics lunch?", "suggestions": ["Sure", "No"], "chosen": 0}
    typed = {"message": "metrics dinner?", "suggestions": ["Sure"], "typed": "at eight"}
    statuses = [
        client.post("/v1/feedback", json=body, headers=client_headers).status_code
        for body in (chosen, chosen, typed)
    ]
    assert statuses == [201, 200, 201]
    after = scrape(client)
    for kind, received, duplicates in (("chosen", 2, 1), ("typed", 1, 0)):
        for name, expected in (
            ("replyguard_feedback_total", received),
            ("replyguard_feedback_duplicates_total", duplicates),
        ):
            assert value(after, name, kind=kind) - value(before, name, kind=kind) == expected


def test_endpoints_are_counted_by_route_never_by_raw_path(
    client: FlaskClient, reviewer_headers: dict[str, str]
) -> None:
    before = scrape(client)
    for generation_id in (998, 999):
        client.get(f"/v1/generations/{generation_id}", headers=reviewer_headers)
    client.get("/no/such/page/12345")
    client.open("/healthz", method="BREW")
    after = scrape(client)
    rule = "/v1/generations/<int:generation_id>"
    assert requests_to(after, rule, "404", "GET") - requests_to(before, rule, "404", "GET") == 2
    assert (
        requests_to(after, "unmatched", "404", "GET")
        - requests_to(before, "unmatched", "404", "GET")
        == 1
    )
    assert not any("998" in dict(labels).get("endpoint", "") for _, labels in after)
    # A made-up method is "other", so clients cannot add series at will.
    assert requests_to(after, "unmatched", "405", "other") == 1 + requests_to(
        before, "unmatched", "405", "other"
    )


def test_production_version_and_its_evaluation_are_labels_and_gauges(
    uncached: APIFlask, client: FlaskClient
) -> None:
    app = uncached
    svc = app.extensions["replyguard"]
    with svc.db.session() as session:
        row = production(session)
        assert row is not None
        stored = {m["name"]: m["value"] for m in row.evaluation["evaluation"]["metrics"]}
    samples = scrape(client)
    assert value(samples, "replyguard_production_model_info", version="v1", generation="0") == 1
    assert value(samples, "replyguard_serving_model_info", version="v1") == 1
    assert value(samples, "replyguard_database_up") == 1
    for name, kind in (
        ("similarity@3", "relevance"),
        ("coverage", "relevance"),
        ("distinct_share", "diversity"),
        ("vendi", "diversity"),
    ):
        gauge = value(samples, "replyguard_production_model_evaluation", metric=name, kind=kind)
        assert gauge == pytest.approx(stored[name])

    swaps_before = value(samples, "replyguard_model_swaps_total")
    candidate = new_candidate(app)
    with svc.db.session() as session:
        promote(session, svc.settings, candidate.version, "tester", "metrics follow production")
    svc.holder.refresh()
    samples = scrape(client)
    production_labels = [
        dict(labels)
        for (name, labels), v in samples.items()
        if name == "replyguard_production_model_info" and v == 1
    ]
    assert production_labels == [{"version": candidate.version, "generation": "1"}]
    assert value(samples, "replyguard_serving_model_info", version=candidate.version) == 1
    assert value(samples, "replyguard_serving_model_info", version="v1") == 0
    assert value(samples, "replyguard_model_swaps_total") == swaps_before + 1


@pytest.mark.integration
def test_a_generation_is_counted_by_verdict_with_its_stage_durations_and_logs_its_id(
    uncached: APIFlask, client: FlaskClient, log_lines: io.StringIO
) -> None:
    svc = uncached.extensions["replyguard"]
    before = scrape(client)
    generation_id = start_generation(svc.pipeline, "tester")
    status = run_generation(svc.pipeline, generation_id)
    with svc.db.session() as session:
        stages = session.get_one(Generation, generation_id).stages
    samples = scrape(client)

    verdict = VERDICTS[status]
    for name in VERDICTS.values():
        counted = value(samples, "replyguard_generations_total", verdict=name)
        assert counted - value(before, "replyguard_generations_total", verdict=name) == (
            1 if name == verdict else 0
        )
    assert value(samples, "replyguard_generations_active") == 0
    for stage in STAGES:
        histogram = "replyguard_generation_stage_duration_seconds"
        assert value(samples, f"{histogram}_count", stage=stage) == 1
        assert value(samples, f"{histogram}_sum", stage=stage) == pytest.approx(
            stages[stage]["seconds"]
        )
        assert value(samples, f"{histogram}_bucket", stage=stage, le="+Inf") == 1
        last = value(samples, "replyguard_last_generation_stage_duration_seconds", stage=stage)
        assert last == pytest.approx(stages[stage]["seconds"])

    # Every stage's lines carry the generation and the stage; "done" ones its duration.
    lines = [r for r in records(log_lines) if r.get("generation_id") == generation_id]
    done = {r["stage"]: r for r in lines if r["message"] == f"stage {r['stage']} done"}
    assert set(done) == set(STAGES)
    assert done["train"]["duration_ms"] == round(stages["train"]["seconds"] * 1000)
    assert all(r["logger"] == "worker.pipeline" and r["level"] == "INFO" for r in done.values())


def test_the_database_collector_caches_for_its_seconds(app: APIFlask) -> None:
    svc = app.extensions["replyguard"]
    now = [100.0]
    collector = DatabaseCollector(svc.db, cache_seconds=5.0, clock=lambda: now[0])

    def production_version() -> str:
        families = {family.name: family for family in collector.collect()}
        [sample] = families["replyguard_production_model_info"].samples
        return sample.labels["version"]

    assert production_version() == "v1"
    candidate = new_candidate(app)
    with svc.db.session() as session:
        promote(session, svc.settings, candidate.version, "tester", "cache test")
    now[0] += 4.9
    assert production_version() == "v1"
    now[0] += 0.1
    assert production_version() == candidate.version


def test_an_unreachable_database_is_a_zero_not_an_error(tmp_path: Path) -> None:
    # Nothing listens on port 1; the driver refuses at once.
    settings = make_settings(
        tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2"
    )
    db = Database(settings)
    try:
        families = {f.name: f for f in DatabaseCollector(db, cache_seconds=0).collect()}
    finally:
        db.dispose()
    assert [s.value for s in families["replyguard_database_up"].samples] == [0]
    assert set(families) == {"replyguard_database_up"}


# --- Who may scrape -----------------------------------------------------------------------------


def test_without_a_token_only_this_machine_may_scrape(app: APIFlask, client: FlaskClient) -> None:
    assert client.get("/metrics").status_code == 200
    client.environ_base["REMOTE_ADDR"] = "::1"
    assert client.get("/metrics").status_code == 200
    # A proxy on this machine passes on a request from elsewhere: not this machine's.
    forwarded = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert error_of(forwarded, 403)["code"] == "forbidden"
    outside = app.test_client()
    outside.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    error = error_of(outside.get("/metrics"), 403)
    assert "REPLYGUARD_METRICS_TOKEN" in error["message"]


def test_with_a_token_any_machine_may_scrape_with_it_and_none_without(
    app: APIFlask, client_headers: dict[str, str]
) -> None:
    settings_of(app, metrics_token="scrape-secret-1")
    outside = app.test_client()
    outside.environ_base["REMOTE_ADDR"] = "10.1.2.3"
    assert scrape(outside, headers={"Authorization": "Bearer scrape-secret-1"})
    for headers in (
        {},
        {"Authorization": "Bearer scrape-secret-2"},
        {"Authorization": "Basic scrape-secret-1"},
        # An API key is no metrics token.
        client_headers,
    ):
        assert error_of(outside.get("/metrics", headers=headers), 401)["code"] == "unauthorized"
    # Loopback is no exception once a token is set.
    local = app.test_client()
    assert local.get("/metrics").status_code == 401


def test_scrapes_are_not_rate_limited_nor_need_an_api_key(
    app: APIFlask, client: FlaskClient, client_headers: dict[str, str]
) -> None:
    settings_of(app, rate_limit="2/minute")
    # The limit holds for this key on an API endpoint...
    statuses = [client.get("/v1/models", headers=client_headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    # ...and never on /metrics, with the key or without.
    statuses = [client.get("/metrics", headers=client_headers).status_code for _ in range(5)]
    statuses += [client.get("/metrics").status_code for _ in range(5)]
    assert statuses == [200] * 10


# --- Request ids and log lines --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("req-2f9c.7:a_b", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("two words", False),
        ('"><script>', False),
        ("", False),
    ],
)
def test_a_proxys_request_id_is_kept_when_safe_else_replaced(
    client: FlaskClient, sent: str, kept: bool
) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": sent})
    answered = response.headers["X-Request-ID"]
    if kept:
        assert answered == sent
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", answered)


def test_every_answer_has_a_new_request_id_errors_too(client: FlaskClient) -> None:
    ids = [client.post(SUGGEST, json={"message": "hi"}).headers["X-Request-ID"] for _ in range(3)]
    assert len(set(ids)) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_request_log_lines_are_json_with_the_request_id(
    client: FlaskClient, client_headers: dict[str, str], log_lines: io.StringIO
) -> None:
    headers = {**client_headers, "X-Request-ID": "trace-41"}
    response = client.post(SUGGEST, json={"message": "Hello"}, headers=headers)
    assert response.status_code == 200
    client.post(SUGGEST, json={"message": "Hello"})  # no key: 401, another id
    lines = records(log_lines)
    mine = [r for r in lines if r.get("request_id") == "trace-41"]
    [request_line] = [r for r in mine if r["logger"] == "webapp.observe"]
    assert request_line["method"] == "POST"
    assert request_line["path"] == SUGGEST
    assert request_line["endpoint"] == SUGGEST
    assert request_line["status"] == 200
    assert request_line["level"] == "INFO"
    assert isinstance(request_line["duration_ms"], float) and request_line["duration_ms"] > 0
    assert dt.datetime.fromisoformat(request_line["timestamp"]).tzinfo is not None
    refused = [r for r in lines if r.get("status") == 401]
    assert len(refused) == 1 and refused[0]["request_id"] not in ("trace-41", None)


def test_a_log_level_that_does_not_exist_is_refused() -> None:
    with pytest.raises(SettingsError, match="REPLYGUARD_LOG_LEVEL='LOUD'"):
        configure_logging("LOUD")


# --- A real gunicorn server with two workers ------------------------------------------------------


@dataclass(frozen=True)
class Server:
    base: str
    token: str
    data_dir: Path
    folder: Path
    log: Path
    # The folder a server that no longer runs left behind.
    stale: Path


@pytest.fixture(scope="module")
def served(trained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("metrics") / "data"
    shutil.copytree(trained_dir, data_dir)
    db = Database(make_settings(data_dir))
    with db.session() as session:
        token, _ = create_key(session, "metrics", Role.CLIENT, "tester")
    db.dispose()
    # What a server that stopped (a process that has exited) left behind: deleted at start.
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = metrics_folder(data_dir, gone.pid)
    stale.mkdir(parents=True)
    (stale / "counter_1.db").write_bytes(b"stale")
    with gunicorn(data_dir, workers=2, threads=8) as server:
        folder = metrics_folder(data_dir, server.process.pid)
        yield Server(server.base, token, data_dir, folder, server.log, stale)


def http(
    url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def scrape_http(server: Server) -> Samples:
    status, _, body = http(f"{server.base}/metrics")
    assert status == 200
    return parse(body.decode())


def suggestions_per_worker(folder: Path) -> dict[int, float]:
    """Suggestion requests each worker process counted, from its own file."""
    counts: dict[int, float] = {}
    for path in folder.glob("counter_*.db"):
        pid = int(path.stem.split("_")[1])
        for family in MultiProcessCollector.merge([str(path)]):
            for sample in family.samples:
                if sample.name == "replyguard_http_requests_total" and sample.labels.get(
                    "endpoint"
                ) == (SUGGEST):
                    counts[pid] = counts.get(pid, 0.0) + sample.value
    return counts


@pytest.mark.integration
def test_metrics_add_up_the_requests_of_both_gunicorn_workers(served: Server) -> None:
    assert served.folder.is_dir()
    assert not served.stale.exists()
    headers = {"Authorization": f"Bearer {served.token}"}
    before = requests_to(scrape_http(served), SUGGEST)

    def suggest(i: int) -> int:
        body = json.dumps({"message": f"are we still on for lunch {i}?"}).encode()
        return http(f"{served.base}{SUGGEST}", body, headers)[0]

    sent = 0
    # Concurrent requests spread over both workers; more rounds only if one got none.
    for _ in range(10):
        with ThreadPoolExecutor(16) as pool:
            statuses = list(pool.map(suggest, range(48)))
        assert statuses == [200] * 48
        sent += 48
        if len(suggestions_per_worker(served.folder)) == 2:
            break
    per_worker = suggestions_per_worker(served.folder)
    assert len(per_worker) == 2 and all(count > 0 for count in per_worker.values())
    assert sum(per_worker.values()) == before + sent
    # Whichever worker answers a scrape, it adds up both workers' counts.
    for _ in range(6):
        assert requests_to(scrape_http(served), SUGGEST) == before + sent

    # A worker that exits: its counts stay, its live gauge (the model it served) goes.
    gone = min(per_worker)
    os.kill(gone, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while (served.folder / f"gauge_livemax_{gone}.db").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not (served.folder / f"gauge_livemax_{gone}.db").exists()
    samples = scrape_http(served)
    assert requests_to(samples, SUGGEST) == before + sent
    assert value(samples, "replyguard_serving_model_info", version="v1") == 1


@pytest.mark.integration
def test_request_ids_and_json_log_lines_over_http(served: Server) -> None:
    headers = {"Authorization": f"Bearer {served.token}", "X-Request-ID": "edge-proxy-77"}
    status, answer, _ = http(f"{served.base}{SUGGEST}", b'{"message": "Hello"}', headers)
    assert (status, answer["X-Request-ID"]) == (200, "edge-proxy-77")
    headers["X-Request-ID"] = "not safe\t!"
    status, answer, _ = http(f"{served.base}{SUGGEST}", b'{"message": "Hello"}', headers)
    generated = answer["X-Request-ID"]
    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", generated)

    # Every line the server wrote, gunicorn's own included, is one JSON object.
    lines = [json.loads(line) for line in served.log.read_text().splitlines()]
    assert any(line["logger"] == "gunicorn.error" for line in lines)
    for request_id in ("edge-proxy-77", generated):
        [line] = [r for r in lines if r.get("request_id") == request_id]
        assert (line["method"], line["path"], line["status"]) == ("POST", SUGGEST, 200)
        assert line["duration_ms"] > 0
        assert {"timestamp", "level", "logger", "message"} <= set(line)
