"""What a web process counts, in Prometheus' terms (the ``prometheus-client`` library).

These are the counts the web process itself sees (requests, suggestions, feedback, batches,
model swaps); what the database knows (generations, the production model and its
evaluation) is read when /metrics is scraped (webapp/observe.py). docs/operations.md says
what each means.

Under gunicorn every worker process writes its counts to files in
``PROMETHEUS_MULTIPROC_DIR`` (the library's multiprocess mode, set up by
webapp/gunicorn_conf.py), and a scrape answered by any worker adds them all up. Without that
variable (tests, a single process) the counts live in this process, in :data:`REGISTRY`.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client import Counter
from prometheus_client import Gauge
from prometheus_client import Histogram

__all__ = [
    "BATCH_SIZE",
    "FEEDBACK",
    "FEEDBACK_DUPLICATES",
    "MODEL_LOAD_FAILURES",
    "MODEL_SWAPS",
    "REGISTRY",
    "REQUESTS",
    "REQUEST_SECONDS",
    "SERVING_MODEL",
    "SUGGESTIONS",
    "model_loaded",
]

PREFIX = "replyguard_"

# This process's counts when there is no multiprocess folder; never the library's global
# registry, which would add process figures that the multiprocess mode cannot give.
REGISTRY = CollectorRegistry(auto_describe=True)

# Suggestions take milliseconds (docs/benchmarks.md: 99th percentile about 0.1 s at 32
# clients); imports and the dashboard's pages up to seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# MicroBatcher.max_batch is 32 (webapp/batching.py).
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32)

REQUESTS = Counter(
    PREFIX + "http_requests_total",
    "HTTP requests answered, by endpoint (the route's rule), method and status.",
    ["endpoint", "method", "status"],
    registry=REGISTRY,
)
REQUEST_SECONDS = Histogram(
    PREFIX + "http_request_duration_seconds",
    "Time from the request's arrival in the app to its answer, by endpoint, method and status.",
    ["endpoint", "method", "status"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
SUGGESTIONS = Counter(
    PREFIX + "suggestions_total",
    "Suggestion requests answered: served (a suggestion reached the model's triggering "
    "threshold) or abstained (none did).",
    ["outcome"],
    registry=REGISTRY,
)
BATCH_SIZE = Histogram(
    PREFIX + "suggestion_batch_size",
    "Suggestion requests answered by one shared encoder pass (webapp/batching.py).",
    buckets=BATCH_BUCKETS,
    registry=REGISTRY,
)
FEEDBACK = Counter(
    PREFIX + "feedback_total",
    "Feedback received: chosen (the user picked a suggestion) or typed (wrote their own).",
    ["kind"],
    registry=REGISTRY,
)
FEEDBACK_DUPLICATES = Counter(
    PREFIX + "feedback_duplicates_total",
    "Feedback whose message and reply were already an example (stored once).",
    ["kind"],
    registry=REGISTRY,
)
MODEL_SWAPS = Counter(
    PREFIX + "model_swaps_total",
    "Times a web process replaced its served model with a new production version "
    "(one per worker process per promotion or rollback; not the load at start-up).",
    registry=REGISTRY,
)
MODEL_LOAD_FAILURES = Counter(
    PREFIX + "model_load_failures_total",
    "Production versions a web process refused to load (corrupt or partial artifact).",
    registry=REGISTRY,
)
# The max over the live worker processes: 1 while any of them serves the version. A dead
# worker's value is dropped (mark_process_dead, webapp/gunicorn_conf.py).
SERVING_MODEL = Gauge(
    PREFIX + "serving_model_info",
    "1 for the model version a live web process serves, 0 for one it served before.",
    ["version"],
    multiprocess_mode="livemax",
    registry=REGISTRY,
)


def model_loaded(previous: str | None, version: str) -> None:
    """Count a web process starting to serve ``version`` instead of ``previous`` (None at
    start-up, which is not a swap)."""
    if previous is not None:
        MODEL_SWAPS.inc()
        SERVING_MODEL.labels(previous).set(0)
    SERVING_MODEL.labels(version).set(1)
