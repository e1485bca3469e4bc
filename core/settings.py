"""Settings: defaults, then the environment, then explicit overrides.

Nothing here runs at import time: call :func:`load_settings` inside a factory.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "REPLYGUARD_"
# Conventional names that deployments already set without our prefix.
UNPREFIXED = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path("var")
    # Empty means SQLite in the data folder.
    database_url: str = ""
    # Empty means an embedded redis-server started by the service (see worker/).
    redis_url: str = ""
    # A local sentence-transformers model folder; empty means the bundled all-MiniLM-L6-v2.
    encoder_path: str = ""
    # Where the embedding cache (a SQLite file) lives; empty means <data_dir>/cache. Keep it
    # on a local disk when the data folder is shared storage: SQLite's WAL needs local files.
    cache_dir: str = ""
    # "torch", "onnx" or "onnx-int8" (ONNX Runtime, exported once per machine on first use).
    # int8 is the default: twice PyTorch's throughput, same recall@3 (docs/benchmarks.md).
    encoder_backend: str = "onnx-int8"
    # Intra-op threads of the encoder; 0 keeps the backend's default (one per core). Several
    # gunicorn workers on few cores run best with 1 each (no oversubscription).
    encoder_threads: int = 0
    encode_batch_size: int = 64
    embedding_cache_size: int = 50_000

    # Serving
    default_k: int = 3
    max_k: int = 10
    max_body_bytes: int = 256 * 1024
    max_examples_per_request: int = 1_000
    record_incoming: bool = True
    incoming_retention: int = 100_000
    production_check_seconds: float = 1.0
    # An API key verified this recently is not looked up again; a revoked key keeps working
    # this long at most in a web process that just used it. 0 looks every key up every time.
    key_cache_seconds: float = 5.0
    # Encoder passes one web process runs at once (webapp/batching.py); each is one thread.
    # Two let one batch be scored while the next is encoded: best of 1-3 on 2 cores.
    batch_threads: int = 2
    # Signs the dashboard's session cookies. Empty: a random key is kept in
    # <data_dir>/secret_key, which every web process on this machine shares. Several machines
    # behind one address must share one key: set REPLYGUARD_SECRET_KEY. Left out of repr so it
    # never reaches a log line.
    secret_key: str = dataclasses.field(default="", repr=False)
    # The dashboard's session cookie goes over HTTPS only. Off for plain-HTTP use on one
    # machine (`make run`); turn it on wherever a TLS proxy fronts the service.
    secure_cookies: bool = False

    # Rate limits (webapp/limits.py), in Flask-Limiter's syntax: "N/second|minute|hour|day",
    # several joined by ";" (all must hold). Empty means no limit. Counted in Redis when
    # REDIS_URL is set, else in each web process's memory.
    # Every /v1 endpoint, per API key and endpoint: a guard for the server, not a quota. About
    # half of what the default deployment serves (682 req/s at 32 clients on 2 cores,
    # docs/benchmarks.md: 41,000 a minute), so no runaway or leaked key can take the whole
    # server from the others, while a real app runs out of capacity before it meets the limit.
    rate_limit: str = "20000/minute"
    # POST /v1/feedback, per key: how much one key can write into the training data. A user
    # taps at most one suggestion per message, and people use a suggestion for about one reply
    # in ten (Smart Reply, Kannan et al. 2016), so 10,000 feedback a day is an app asking for
    # about 100,000 suggestions a day (10,000 daily users getting ten messages each); its
    # average is 7 a minute, and 60 a minute leaves room for peak hours.
    rate_limit_feedback: str = "60/minute;10000/day"
    # POST /v1/examples (reviewer and admin keys), per key and per request of up to
    # max_examples_per_request rows: a script importing 100,000 rows in batches of 1,000 takes
    # under four minutes, and a key imports at most a million rows a day. Larger files go
    # through `replyguard data import`, which has no limit.
    rate_limit_imports: str = "30/minute;1000/day"
    # Failed dashboard sign-ins per client address (successful ones are not counted). Keys are
    # 256-bit random, so this is not what keeps them safe; it stops a script from hammering
    # the key lookup while leaving a person ten typos a minute.
    rate_limit_sign_in: str = "10/minute;100/day"

    # Notifications (worker/notify.py, docs/operations.md): a signed webhook when a generation
    # is blocked, warns or fails and when production changes by override or rollback, sent by
    # a worker. URLs separated by spaces or commas; empty sends nothing.
    notify_urls: str = ""
    # The shared secret of each body's HMAC-SHA256 signature (X-ReplyGuard-Signature).
    # Required with notify_urls: nothing is sent unsigned. Left out of repr, like secret_key.
    notify_secret: str = dataclasses.field(default="", repr=False)
    # The events sent, comma-separated; "generation.passed" (a promotion by the gate) is
    # there to opt in to.
    notify_events: str = (
        "generation.blocked,generation.warned,generation.failed,"
        "production.override,production.rollback"
    )
    # Attempts per delivery, the wait after the first failed one (doubled after each), and
    # each request's timeout: waits of 10+20+40+80+160 s ride out about five minutes of a
    # receiver's downtime (a restart, a deploy) before the delivery is given up.
    notify_max_attempts: int = 6
    notify_backoff_seconds: float = 10.0
    notify_timeout_seconds: float = 10.0
    # Where people open the dashboard: the links in notifications start with it. The default
    # is where `replyguard run` and `replyguard serve` listen.
    public_url: str = "http://127.0.0.1:8000"

    # Operations (docs/operations.md). GET /metrics: empty answers only requests made on this
    # machine (loopback, not forwarded by a proxy); set, any caller that sends
    # "Authorization: Bearer <token>". Left out of repr so it never reaches a log line.
    metrics_token: str = dataclasses.field(default="", repr=False)
    # /metrics reuses what it read from the database (generations, the production model's
    # evaluation) for this long, in each web process: a scrape every 15 s reads it at most
    # once per scrape, and a burst of scrapes does not reread it.
    metrics_cache_seconds: float = 5.0
    # The level of the JSON log lines every process writes to standard error (core/logs.py).
    log_level: str = "INFO"

    # Model
    seed: int = 13
    adapter_epochs: int = 30
    adapter_batch_size: int = 128
    adapter_learning_rate: float = 2e-3
    adapter_temperature: float = 0.05
    knn_neighbours: int = 20
    candidates: int = 50
    # Two suggestions at or above this cosine say the same thing.
    diversity_ceiling: float = 0.85
    # Above this many rows a FAISS index is approximate (HNSW) instead of exact.
    exact_index_limit: int = 50_000

    # The response set (models/response_set.py says where each default comes from): the
    # longest suggestion in characters and words, and the distinct conversations a reply's
    # meaning must be written in before it is suggested to anyone.
    response_max_chars: int = 40
    response_max_words: int = 8
    response_min_support: int = 3
    # Triggering: the share of held-out training messages a model is calibrated to answer;
    # it abstains on the rest, the least confident (models.suggester.Triggering).
    triggering_target_coverage: float = 0.8
    # The demo data (core/demo.py, docs/demo-data.md): "chitchat", two-person chat, or
    # "chatterbot", the small corpus the tests train on.
    demo_dataset: str = "chitchat"
    # Chitchat pairs the demo keeps (of 131,569; `data load-demo --full` loads them all).
    # Chosen so that `make run` on an empty data folder serves within about a minute on two
    # cores: bench/demo_size.py, docs/benchmarks.md.
    demo_pairs: int = 10_000
    # Zipf exponent of the demo's niche sizes: the niche of rank r gets a share ~ r**-skew.
    demo_skew: float = 1.0
    # Share of each demo niche's messages loaded as incoming traffic, replies hidden.
    demo_traffic_fraction: float = 0.2

    # Generations
    # Prompts the production model labels per generation: a seeded uniform sample of the
    # incoming traffic (worker/pipeline.py, _prompt_pool); 0 labels none (no self-training).
    synthesize_max_prompts: int = 2_000
    # 0 writes the top suggestion; above 0 samples among the top suggestions.
    synthesize_temperature: float = 0.0
    synthetic_cap: float = 0.5
    dedup_threshold: float = 0.95
    quality_min_reply_chars: int = 2
    quality_max_reply_chars: int = 500
    quality_min_relevance: float = 0.10
    # Cron expression (minute hour day month weekday) for scheduled generations; empty = off.
    generation_schedule: str = ""

    # Benchmark split of human examples, set aside when the first model is trained.
    benchmark_fraction: float = 0.12
    benchmark_min_per_niche: int = 3
    # The anchor: human examples every generation must train on, stratified by niche.
    anchor_fraction: float = 0.3
    anchor_min_per_niche: int = 5
    # A suggestion matches a gold reply when identical or at least this cosine.
    match_threshold: float = 0.8

    def __post_init__(self) -> None:
        # Refused when the settings are loaded, not in the middle of a generation.
        if self.synthesize_max_prompts < 0:
            raise SettingsError(
                f"REPLYGUARD_SYNTHESIZE_MAX_PROMPTS={self.synthesize_max_prompts} is negative: "
                "give the prompts to label per generation, 0 for none"
            )

    @property
    def database(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'replyguard.sqlite3').resolve()}"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def embedding_cache(self) -> Path:
        return (
            Path(self.cache_dir) if self.cache_dir else self.data_dir / "cache"
        ) / "embeddings.sqlite3"

    def with_overrides(self, **overrides: Any) -> Settings:
        return dataclasses.replace(self, **_coerce_all(overrides))


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Build settings from defaults, then ``REPLYGUARD_*`` variables, then ``overrides``.

    Example:
        >>> load_settings({"data_dir": "/tmp/rg"}, environ={}).data_dir
        PosixPath('/tmp/rg')
    """
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(Settings):
        name = UNPREFIXED.get(field.name)
        if name and name in env:
            values[field.name] = env[name]
        key = ENV_PREFIX + field.name.upper()
        if key in env:
            values[field.name] = env[key]
    values.update(overrides or {})
    return Settings(**_coerce_all(values))


def _coerce_all(values: Mapping[str, Any]) -> dict[str, Any]:
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    out: dict[str, Any] = {}
    for name, raw in values.items():
        if name not in fields:
            raise SettingsError(f"unknown setting {name!r}")
        default = fields[name].default
        out[name] = _coerce(name, raw, type(default))
    return out


def _coerce(name: str, raw: Any, kind: Any) -> Any:
    if not isinstance(raw, str) or kind is str:
        return Path(raw) if kind is not str and issubclass(kind, Path) else raw
    try:
        if kind is bool:
            lowered = raw.strip().lower()
            if lowered in {"1", "true", "yes", "on"}:
                return True
            if lowered in {"0", "false", "no", "off"}:
                return False
            raise ValueError(raw)
        if issubclass(kind, Path):
            return Path(raw)
        return kind(raw)
    except ValueError:
        env_name = UNPREFIXED.get(name, ENV_PREFIX + name.upper())
        raise SettingsError(f"{env_name}={raw!r} is not a valid {kind.__name__}") from None
