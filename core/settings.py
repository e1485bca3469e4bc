"""Settings: defaults, then the environment, then explicit overrides, validated by pydantic.

The settings are one tree (pydantic-settings). This module holds its trunk,
:class:`CoreSettings`: the flat settings of the service (paths, database, serving, limits,
notifications, the demo data, the reservoir, the seed) and the loading machinery. The root,
``worker.settings.Settings``, adds each model and safeguard component's own config, nested
(``settings.adapter``, ``settings.dedup``, ...), whose defaults live next to the component;
it sits above ``models`` and ``safeguards`` because ``core`` may not import them
(docs/architecture.md). Code in ``core`` takes a ``CoreSettings``; the root is one.

Every setting has one flat name, used alike in the environment, as ``REPLYGUARD_<NAME>``
(``DATABASE_URL`` and ``REDIS_URL`` also without the prefix), and in overrides
(``load({"default_k": 2})``). A name is a field of the class, or one of its ``PLACES``, which
put a value into nested fields: ``REPLYGUARD_ADAPTER_EPOCHS`` sets ``settings.adapter.epochs``,
``REPLYGUARD_SEED`` every seeded component. A value that cannot be used is a
:class:`SettingsError` naming the variable, the value and what to give instead.

Nothing here runs at import time: call :meth:`CoreSettings.load` inside a factory.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from collections.abc import Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any
from typing import ClassVar
from typing import Self

from pydantic import Field
from pydantic import ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings import SettingsConfigDict

ENV_PREFIX = "REPLYGUARD_"
# Conventional names that deployments already set without our prefix.
UNPREFIXED = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}
# The one default seed: of the settings, and of every seeded component's config, so that a
# component used without settings (a test, a benchmark) draws what the service draws.
DEFAULT_SEED = 13

# Where a value goes: a field name, then the nested field names inside it.
Place = tuple[str, ...]


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def variable(name: str) -> str:
    """The environment variable of the setting ``name`` (``default_k`` ->
    ``REPLYGUARD_DEFAULT_K``; ``database_url`` -> ``DATABASE_URL``)."""
    return UNPREFIXED.get(name, ENV_PREFIX + name.upper())


# The variables the settings being built read: os.environ unless CoreSettings.load was given
# others (tests). A context variable because pydantic-settings builds its sources itself, in
# settings_customise_sources, and offers no stable argument to hand them a mapping.
_ENVIRON: ContextVar[Mapping[str, str] | None] = ContextVar("replyguard_environ", default=None)


@contextmanager
def _reading(environ: Mapping[str, str] | None) -> Iterator[Mapping[str, str]]:
    token = _ENVIRON.set(environ)
    try:
        yield os.environ if environ is None else environ
    finally:
        _ENVIRON.reset(token)


def _given(cls: type[CoreSettings], environ: Mapping[str, str]) -> dict[str, tuple[str, str]]:
    """Setting name -> (variable, raw value) of every setting ``environ`` sets;
    ``REPLYGUARD_<NAME>`` wins over an unprefixed ``DATABASE_URL`` or ``REDIS_URL``."""
    given: dict[str, tuple[str, str]] = {}
    for name in cls.places():
        for key in (UNPREFIXED.get(name), ENV_PREFIX + name.upper()):
            if key and key in environ:
                given[name] = (key, environ[key])
    return given


class FlatEnvironment(PydanticBaseSettingsSource):
    """The pydantic-settings source of the environment: each setting's variable (os.environ,
    or what :meth:`CoreSettings.load` was given), its value put where the setting's name
    places it (``CoreSettings.places``).

    Args:
        settings_cls: the settings class whose names are read.
    """

    def __init__(self, settings_cls: type[CoreSettings]) -> None:
        super().__init__(settings_cls)
        found = _ENVIRON.get()
        given = _given(settings_cls, os.environ if found is None else found)
        self.values = settings_cls.nest({name: raw for name, (_, raw) in given.items()})

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        """The nested value of one top-level field (None when no variable sets it)."""
        return self.values.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return self.values


class CoreSettings(BaseSettings):
    """The flat settings (README.md's settings table documents each variable) and the
    loading of the whole tree; see the module docstring. Frozen: a changed copy comes from
    :meth:`with_overrides`."""

    model_config = SettingsConfigDict(frozen=True, extra="forbid")

    # Names whose value goes elsewhere than the field of the same name: name -> places.
    # Subclasses add the names of their nested components' fields.
    PLACES: ClassVar[Mapping[str, tuple[Place, ...]]] = {}

    data_dir: Path = Path("var")
    # Empty means SQLite in the data folder.
    database_url: str = ""
    # Empty means an embedded redis-server started by the service (see worker/).
    redis_url: str = ""
    # Where the embedding cache (a SQLite file) lives; empty means <data_dir>/cache. Keep it
    # on a local disk when the data folder is shared storage: SQLite's WAL needs local files.
    cache_dir: str = ""

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
    secret_key: str = Field(default="", repr=False)
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
    notify_secret: str = Field(default="", repr=False)
    # The events sent, comma-separated; "generation.passed" (a promotion by the gate) is
    # there to opt in to.
    notify_events: str = (
        "generation.blocked,generation.warned,generation.failed,"
        "production.override,production.rollback"
    )
    # Attempts per delivery, the wait after the first failed one (doubled after each), and
    # each attempt's deadline (for the whole request and answer, not per read: core/webhooks.py
    # post): waits of 10+20+40+80+160 s ride out about five minutes of a receiver's downtime
    # (a restart, a deploy) before the delivery is given up.
    notify_max_attempts: int = 6
    notify_backoff_seconds: float = 10.0
    notify_timeout_seconds: float = 10.0
    # Where people open the dashboard: the links in notifications start with it. The default
    # is where `replyguard run` and `replyguard serve` listen.
    public_url: str = "http://127.0.0.1:8000"

    # Operations (docs/operations.md). GET /metrics: empty answers only requests made on this
    # machine (loopback, not forwarded by a proxy); set, any caller that sends
    # "Authorization: Bearer <token>". Left out of repr so it never reaches a log line.
    metrics_token: str = Field(default="", repr=False)
    # /metrics reuses what it read from the database (generations, the production model's
    # evaluation) for this long, in each web process: a scrape every 15 s reads it at most
    # once per scrape, and a burst of scrapes does not reread it.
    metrics_cache_seconds: float = 5.0
    # The level of the JSON log lines every process writes to standard error (core/logs.py).
    log_level: str = "INFO"

    # Every seeded choice (splits, samples, training, the demo's slices): one value, so one
    # variable reruns a whole generation the same way. Components' own defaults are this too.
    seed: int = DEFAULT_SEED

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
    # incoming traffic (worker/stages/snapshot.py, prompt_pool); 0 labels none (no self-training).
    # Refused when the settings are loaded, not in the middle of a generation.
    synthesize_max_prompts: int = Field(default=2_000, ge=0)
    # 0 writes the top suggestion; above 0 samples among the top suggestions.
    synthesize_temperature: float = 0.0
    # Cron expression (minute hour day month weekday) for scheduled generations; empty = off.
    generation_schedule: str = ""

    # Benchmark split of human examples, set aside when the first model is trained.
    benchmark_fraction: float = 0.12
    benchmark_min_per_niche: int = 3
    # The anchor: human examples every generation must train on, stratified by niche.
    anchor_fraction: float = 0.3
    anchor_min_per_niche: int = 5

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

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments, then the variables by our names; no .env or secret files.
        return init_settings, FlatEnvironment(cls)

    @classmethod
    def places(cls) -> dict[str, tuple[Place, ...]]:
        """Every setting's name -> the fields its value goes to: each flat field is its own
        name, then ``PLACES`` (names of nested fields, or one value in several places)."""
        nested = {place[0] for places in cls.PLACES.values() for place in places if len(place) > 1}
        names: dict[str, tuple[Place, ...]] = {
            name: ((name,),) for name in cls.model_fields if name not in nested
        }
        names.update(cls.PLACES)
        return names

    @classmethod
    def variables(cls) -> list[str]:
        """The environment variable of every setting, in field order (README.md's table)."""
        return [variable(name) for name in cls.places()]

    @classmethod
    def nest(cls, values: Mapping[str, Any]) -> dict[str, Any]:
        """Flat ``{name: value}`` as the nested keyword arguments of the class.

        Raises:
            SettingsError: a name that is no setting.
        """
        places = cls.places()
        nested: dict[str, Any] = {}
        for name, value in values.items():
            if name not in places:
                raise SettingsError(
                    f"unknown setting {name!r}: the names are README.md's settings variables, "
                    f"in lower case without {ENV_PREFIX}"
                )
            for place in places[name]:
                *parents, last = place
                target = nested
                for parent in parents:
                    target = target.setdefault(parent, {})
                target[last] = value
        return nested

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Self:
        """Defaults, then the ``REPLYGUARD_*`` variables of ``environ`` (None: the process's),
        then ``overrides`` (flat names, as in the environment).

        Raises:
            SettingsError: an unknown name, or a value that cannot be used; the message names
                the variable (or override) and what to give instead.

        Example:
            >>> CoreSettings.load({"data_dir": "/tmp/rg"}, environ={}).data_dir
            PosixPath('/tmp/rg')
        """
        with _reading(environ) as env:
            return cls._build(overrides or {}, {}, _given(cls, env))

    def with_overrides(self, **overrides: Any) -> Self:
        """A copy with these settings (flat names) changed; the environment is not read again.

        Raises:
            SettingsError: as :meth:`load`.
        """
        with _reading({}):
            return self._build(overrides, self.model_dump(), {})

    @classmethod
    def _build(
        cls, overrides: Mapping[str, Any], base: dict[str, Any], given: dict[str, tuple[str, Any]]
    ) -> Self:
        init = _deep_merge(base, cls.nest(overrides))
        try:
            return cls(**init)
        except ValidationError as exc:
            labelled = {**given, **{name: (name, value) for name, value in overrides.items()}}
            raise SettingsError(_explain(cls, exc, labelled)) from None


def _deep_merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


# Pydantic's error types for a value of the wrong kind: the kind, and what to give instead.
_PARSING = {
    "int_parsing": ("int", "a whole number"),
    "int_from_float": ("int", "a whole number"),
    "float_parsing": ("float", "a number"),
    "bool_parsing": ("bool", "true or false (also 1/0, yes/no, on/off)"),
}


def _explain(
    cls: type[CoreSettings], error: ValidationError, given: Mapping[str, tuple[str, Any]]
) -> str:
    """One line about the first problem: which variable (or override), its value, what is
    wrong and what to give instead."""
    problem = error.errors()[0]
    loc = tuple(str(part) for part in problem["loc"])
    # The setting whose place holds the bad value (or, for a whole component refused by its
    # own checks, the settings given inside it).
    matching = [
        name
        for name, places in cls.places().items()
        if any(loc[: len(p)] == p or p[: len(loc)] == loc for p in places)
    ]
    named = [name for name in matching if name in given] or matching[:1]
    if not named:
        return f"settings: {problem['msg']}"
    name = named[0]
    label, raw = given.get(name, (variable(name), None))
    place = next(p for p in cls.places()[name] if loc[: len(p)] == p or p[: len(loc)] == loc)
    # A variable can be unset; an override (label: the bare name) is the caller's to fix.
    unset = f", or unset it for the default ({_default(cls, place)})" if label != name else ""
    if problem["type"] in _PARSING:
        kind, hint = _PARSING[problem["type"]]
        inner = f" at {'.'.join(loc[len(place) :])}" if len(loc) > len(place) else ""
        return f"{label}={raw!r} is not a valid {kind}{inner}: give {hint}{unset}"
    if problem["type"] == "greater_than_equal" and problem.get("ctx", {}).get("ge") == 0:
        return f"{label}={raw} is negative: give 0 or more{unset}"
    message = str(problem["msg"]).removeprefix("Value error, ")
    others = "".join(f", {given[n][0]}={given[n][1]!r}" for n in named[1:])
    return f"{label}={raw!r}{others}: {message}{unset}"


def _default(cls: type[CoreSettings], place: Place) -> Any:
    """The default at ``place``: the field's, or the nested component default's field."""
    value: Any = cls.model_fields[place[0]].get_default(call_default_factory=True)
    for part in place[1:]:
        value = getattr(value, part)
    return value
