"""Observing the web process: a request id and a JSON log line per request, request metrics,
and ``GET /metrics`` in the Prometheus text format (docs/operations.md).

- Request id: taken from the ``X-Request-ID`` header a proxy sends when it is 1-128 safe
  characters (letters, digits, ``.``, ``_``, ``:``, ``-``), otherwise a new random one; it is
  on every log line of the request and returned in the answer's ``X-Request-ID`` header.
- Every answer counts in ``replyguard_http_requests_total`` and
  ``replyguard_http_request_duration_seconds`` by the route's rule (``/v1/generations/<int:
  generation_id>``, never the raw path: one series per endpoint, whatever clients send) and
  is logged as one line with ``method``, ``path``, ``status`` and ``duration_ms``.
- ``/metrics``: this process's counts (webapp/metrics.py; under gunicorn, every worker's),
  plus what the database knows, read by :class:`DatabaseCollector` at most once per
  ``metrics_cache_seconds``. With ``REPLYGUARD_METRICS_TOKEN`` empty it answers only requests
  made on this machine (loopback and not forwarded by a proxy, which would send
  ``X-Forwarded-For`` or ``Forwarded``), else 403; with a token it answers any caller that
  sends ``Authorization: Bearer <token>``, else 401. It needs no API key and is not rate
  limited.
"""

from __future__ import annotations

import hmac
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

from apiflask import APIBlueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import g
from flask import request
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily
from prometheus_client.metrics_core import GaugeMetricFamily
from prometheus_client.metrics_core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core import logs
from core.db import Database
from core.generations import generation_statuses
from core.generations import stage_seconds
from core.metrics_files import MULTIPROC_VARIABLE
from core.schema import GenerationStatus
from models.registry import production
from safeguards.metrics import Evaluation
from webapp import metrics
from webapp.errors import ApiError
from webapp.limits import limiter
from webapp.state import services

__all__ = ["EXTENSION", "DatabaseCollector", "bp", "init_app", "request_id"]

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Methods counted under their own name; anything else (a client can send any token) is
# "other", so that no client can add series at will.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_LOOPBACK = frozenset({"127.0.0.1", "::1", "::ffff:127.0.0.1"})
_FORWARDED = ("X-Forwarded-For", "Forwarded", "X-Real-IP")

# Generation statuses that are final, as the gate's verdicts (safeguards/gate.py) name them.
VERDICTS = {
    GenerationStatus.PASSED.value: "pass",
    GenerationStatus.WARNED.value: "warn",
    GenerationStatus.BLOCKED.value: "block",
    GenerationStatus.FAILED.value: "failed",
}
# Whose stage records never change again (a failed generation can be resumed).
_SETTLED = frozenset(
    {GenerationStatus.PASSED.value, GenerationStatus.WARNED.value, GenerationStatus.BLOCKED.value}
)
# A stage takes from a fraction of a second (snapshot, gate) to an hour (training on a large
# data set on a CPU; worker/tasks.py gives a stage 3,600 s).
STAGE_BUCKETS = (0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 900.0, 3600.0, 10800.0)

bp = APIBlueprint("observe", __name__, tag="Operations")
# Where the app keeps its DatabaseCollector.
EXTENSION = "replyguard.observe"


def request_id(sent: str | None) -> str:
    """The id of this request: ``sent`` (a proxy's ``X-Request-ID``) when it is 1-128 of
    ``[A-Za-z0-9._:-]``, else a new random one (32 hexadecimal digits)."""
    if sent and _SAFE_REQUEST_ID.fullmatch(sent):
        return sent
    return uuid.uuid4().hex


def _begin() -> None:
    g.request_started = time.perf_counter()
    g.request_id = request_id(request.headers.get(REQUEST_ID_HEADER))
    g.log_token = logs.bind(request_id=g.request_id)


def _finish(response: Response) -> Response:
    seconds = time.perf_counter() - g.get("request_started", time.perf_counter())
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    method = request.method if request.method in _METHODS else "other"
    status = str(response.status_code)
    metrics.REQUESTS.labels(rule, method, status).inc()
    metrics.REQUEST_SECONDS.labels(rule, method, status).observe(seconds)
    response.headers[REQUEST_ID_HEADER] = g.get("request_id", "")
    log.info(
        "%s %s %s",
        request.method,
        request.path,
        response.status_code,
        extra={
            "method": request.method,
            "path": request.path,
            "endpoint": rule,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
        },
    )
    return response


def _end(_error: BaseException | None) -> None:
    token = g.pop("log_token", None)
    if token is not None:
        logs.unbind(token)


SCRAPE_RESPONSES: dict[int, Any] = {
    200: {
        "description": "The metrics: Prometheus' text format, or OpenMetrics when the Accept "
        "header asks for it",
        "content": {
            media.split(";")[0]: {"schema": {"type": "string"}}
            for media in (CONTENT_TYPE_LATEST, OPENMETRICS)
        },
    },
    401: "Missing or wrong token",
    403: "Not from this machine",
}


@bp.get("/metrics")
@bp.doc(
    summary="Counts and figures in the Prometheus text format",
    description="Open to requests from this machine, or to any caller with "
    "'Authorization: Bearer <REPLYGUARD_METRICS_TOKEN>' when that setting is set. "
    "docs/operations.md lists every metric.",
    responses=SCRAPE_RESPONSES,
)
def scrape() -> Response:
    _allow(services().settings.metrics_token)
    registry = CollectorRegistry()
    folder = os.environ.get(MULTIPROC_VARIABLE)
    if folder:
        MultiProcessCollector(registry, folder)
    else:
        registry.register(metrics.REGISTRY)
    registry.register(current_app.extensions[EXTENSION])
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return Response(encode(registry), headers={"Content-Type": content_type})


def _allow(token: str) -> None:
    """Refuse a scrape the settings do not allow (see the module docstring)."""
    if token:
        sent = request.headers.get("Authorization", "")
        scheme, _, value = sent.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            value.strip().encode(), token.encode()
        ):
            raise ApiError(
                401,
                "send 'Authorization: Bearer <token>' with the REPLYGUARD_METRICS_TOKEN token",
                code="unauthorized",
            )
        return
    local = request.remote_addr in _LOOPBACK and not any(h in request.headers for h in _FORWARDED)
    if not local:
        raise ApiError(
            403,
            "/metrics answers only this machine: set REPLYGUARD_METRICS_TOKEN to scrape it from "
            "elsewhere with 'Authorization: Bearer <token>'",
        )


class DatabaseCollector:
    """What the database knows, for /metrics: generations by verdict and their stage
    durations (recorded by every worker, whatever process ran them), and the production
    model's version and evaluation.

    Args:
        db: the service's database.
        cache_seconds: a scrape within this many seconds of the last read reuses it
            (``REPLYGUARD_METRICS_CACHE_SECONDS``, default 5 s from core.settings): every web
            process answers scrapes, and each read parses the production row's evaluation.
        clock: seconds on a monotonic clock (tests pass their own).
    """

    def __init__(
        self, db: Database, cache_seconds: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.db = db
        self.cache_seconds = cache_seconds
        self._clock = clock
        self._lock = threading.Lock()
        self._read_at = float("-inf")
        self._families: list[Metric] = []
        # Stage durations of settled generations (id -> {stage: seconds}): read once.
        self._settled: dict[int, dict[str, float]] = {}

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            now = self._clock()
            if now - self._read_at >= self.cache_seconds:
                self._families = self._read()
                self._read_at = now
            families = self._families
        yield from families

    def _read(self) -> list[Metric]:
        up = GaugeMetricFamily(
            metrics.PREFIX + "database_up",
            "1 when /metrics could read the database just now; 0 when it could not (the "
            "figures read from it are then missing).",
        )
        try:
            with self.db.session() as session:
                families = [*_production(session), *self._generations(session)]
        except SQLAlchemyError as exc:
            log.warning("/metrics cannot read the database: %s", exc)
            up.add_metric([], 0)
            return [up]
        up.add_metric([], 1)
        return [up, *families]

    def _generations(self, session: Session) -> list[Metric]:
        rows = generation_statuses(session)
        unread = [gid for gid, _, status in rows if gid not in self._settled]
        stages = stage_seconds(session, unread)
        verdicts = dict.fromkeys(VERDICTS.values(), 0)
        active = 0
        seconds: dict[str, list[float]] = {}
        last: tuple[int, dict[str, float]] | None = None
        for gid, number, status in rows:
            timings = self._settled.get(gid) or stages.get(gid, {})
            if status in _SETTLED:
                self._settled[gid] = timings
            if status in VERDICTS:
                verdicts[VERDICTS[status]] += 1
                if last is None or number > last[0]:
                    last = (number, timings)
            else:
                active += 1
            for stage, value in timings.items():
                seconds.setdefault(stage, []).append(value)

        total = CounterMetricFamily(
            metrics.PREFIX + "generations",
            "Generations that finished, by verdict: pass, warn and block as the gate decided, "
            "failed when a stage failed (a failed generation that is resumed moves on to its "
            "verdict). The clean baseline is not counted.",
            labels=["verdict"],
        )
        for verdict, count in verdicts.items():
            total.add_metric([verdict], count)
        running = GaugeMetricFamily(
            metrics.PREFIX + "generations_active",
            "Generations queued or running (at most 1).",
            value=active,
        )
        durations = HistogramMetricFamily(
            metrics.PREFIX + "generation_stage_duration_seconds",
            "Seconds each finished stage of a generation took, as the worker recorded it.",
            labels=["stage"],
        )
        for stage, values in seconds.items():
            buckets = [(str(b), sum(v <= b for v in values)) for b in STAGE_BUCKETS]
            durations.add_metric([stage], [*buckets, ("+Inf", len(values))], sum(values))
        latest = GaugeMetricFamily(
            metrics.PREFIX + "last_generation_stage_duration_seconds",
            "Seconds each stage of the latest finished generation took.",
            labels=["stage"],
        )
        for stage, value in (last[1] if last else {}).items():
            latest.add_metric([stage], value)
        return [total, running, durations, latest]


def _production(session: Session) -> list[Metric]:
    info = GaugeMetricFamily(
        metrics.PREFIX + "production_model_info",
        "The model version the registry has in production (value 1), and its generation.",
        labels=["version", "generation"],
    )
    evaluation = GaugeMetricFamily(
        metrics.PREFIX + "production_model_evaluation",
        "The production model's metrics on the benchmark, as the gate compares them "
        "(safeguards/metrics.py): metric name and kind (relevance, diversity, tail).",
        labels=["metric", "kind"],
    )
    row = production(session)
    if row is not None:
        info.add_metric([row.version, str(row.generation)], 1)
        stored = (row.evaluation or {}).get("evaluation")
        if stored:
            for metric in Evaluation.from_dict(stored).metrics.values():
                evaluation.add_metric([metric.name, metric.kind], metric.value)
    return [info, evaluation]


def init_app(app: Flask) -> None:
    """Give every request an id, a log line and its metrics, and serve /metrics; call once
    the app's services are set up.

    Call before any other extension adds request hooks: the request's clock starts in the
    first hook, and its metrics are counted in the last (``after_request`` hooks run in
    reverse order), so the figures include every other hook's work and its final status.
    """
    with app.app_context():
        svc = services()
    app.extensions[EXTENSION] = DatabaseCollector(svc.db, svc.settings.metrics_cache_seconds)
    app.before_request(_begin)
    app.after_request(_finish)
    app.teardown_request(_end)
    app.register_blueprint(bp)
    limiter.exempt(bp)
