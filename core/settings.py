"""Settings: defaults, then the environment, then explicit overrides, validated by pydantic.

The settings are one tree (pydantic-settings). This module holds its trunk,
:class:`CoreSettings`: the flat settings of the service (paths, database, serving, limits,
notifications, the demo data, the reservoir, the seed) and how the tree is loaded. The root,
``worker.settings.Settings``, adds each model and safeguard component's own config as a
nested field (``settings.adapter``, ``settings.dedup``, ...), whose defaults live next to the
component; it sits above ``models`` and ``safeguards`` because ``core`` may not import them
(docs/architecture.md). Code in ``core`` takes a ``CoreSettings``; the root is one.

Names are pydantic-settings' own: a field is ``REPLYGUARD_<FIELD>`` in the environment, a
nested field ``REPLYGUARD_<FIELD>__<NESTED>`` (``REPLYGUARD_ADAPTER__EPOCHS``), and overrides
are the same names as keyword arguments (``load({"adapter": {"epochs": 2}})``).
``DATABASE_URL`` and ``REDIS_URL`` also work without the prefix, and the flat names of the
nested fields that earlier releases documented (``REPLYGUARD_ADAPTER_EPOCHS``) work through
the root's ``RENAMED`` table, with a deprecation line in the log. docs/settings.md lists every
variable, generated from the classes (``python -m worker.settings_page``). A value that
cannot be used is a :class:`SettingsError` naming the variable, the value and what to give
instead.

Nothing here runs at import time: call :meth:`CoreSettings.load` inside a factory.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from typing import ClassVar
from typing import Self

from pydantic import Field
from pydantic import ModelWrapValidatorHandler
from pydantic import PrivateAttr
from pydantic import ValidationError
from pydantic import model_validator
from pydantic_settings import BaseSettings
from pydantic_settings import EnvSettingsSource
from pydantic_settings import PydanticBaseSettingsSource
from pydantic_settings import SettingsConfigDict
from pydantic_settings import SettingsError as SourceError
from pydantic_settings.sources.utils import parse_env_vars

logger = logging.getLogger(__name__)

ENV_PREFIX = "REPLYGUARD_"
NESTED = "__"
# Conventional names that deployments already set without our prefix: name -> our variable,
# which wins when both are set. Not deprecated.
UNPREFIXED = {"DATABASE_URL": "REPLYGUARD_DATABASE_URL", "REDIS_URL": "REPLYGUARD_REDIS_URL"}
# The one default seed: of the settings, and of every seeded component's config, so that a
# component used without settings (a test, a benchmark) draws what the service draws.
DEFAULT_SEED = 13

# Where a value goes: a field name, then the nested field names inside it.
Place = tuple[str, ...]


class SettingsError(ValueError):
    """A setting has a value that cannot be used."""


def variable(place: Place) -> str:
    """The environment variable of the setting at ``place`` (``("default_k",)`` ->
    ``REPLYGUARD_DEFAULT_K``; ``("adapter", "epochs")`` -> ``REPLYGUARD_ADAPTER__EPOCHS``)."""
    return ENV_PREFIX + NESTED.join(place).upper()


def place_of(name: str) -> Place:
    """The place of a ``REPLYGUARD_*`` variable: :func:`variable` backwards."""
    return tuple(name.removeprefix(ENV_PREFIX).lower().split(NESTED))


class Environment(EnvSettingsSource):
    """pydantic-settings' environment source (prefix ``REPLYGUARD_``, nesting by ``__``) over
    a given mapping, with the other names of ``settings_cls.RENAMED`` and :data:`UNPREFIXED`
    translated first.

    Args:
        settings_cls: the settings class being built.
        environ: the variables; None reads the process's.

    Attributes:
        given: place -> (the variable as the user spelt it, its raw value), of every variable
            that sets a setting: what an error message names.
    """

    def __init__(
        self, settings_cls: type[CoreSettings], environ: Mapping[str, str] | None = None
    ) -> None:
        self.environ = os.environ if environ is None else environ
        self.given: dict[Place, tuple[str, str]] = {}
        self._settings = settings_cls
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # The override point pydantic-settings' own DotEnvSettingsSource uses.
        environ = {key.upper(): value for key, value in self.environ.items()}
        spelt = {name: name for name in environ if name.startswith(ENV_PREFIX)}
        conventional = {name: (ours,) for name, ours in UNPREFIXED.items()}
        for other, names in {**conventional, **self._settings.RENAMED}.items():
            if other not in environ:
                continue
            if other not in UNPREFIXED:
                logger.warning(
                    "%s is deprecated: set %s instead (docs/settings.md)",
                    other,
                    " and ".join(names),
                )
            for name in names:
                if name not in environ:
                    environ[name], spelt[name] = environ[other], other
        for name, label in spelt.items():
            self.given[place_of(name)] = (label, environ[name])
        return parse_env_vars(
            environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str
        )


class CoreSettings(BaseSettings):
    """The flat settings (docs/settings.md documents each variable) and the loading of the
    whole tree; see the module docstring. Frozen: a changed copy comes from
    :meth:`with_overrides`."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        env_prefix=ENV_PREFIX,
        env_nested_delimiter=NESTED,
        use_attribute_docstrings=True,
    )

    # Other names of variables, kept working: old name -> the variables it sets. The root adds
    # the flat names earlier releases gave its nested fields.
    RENAMED: ClassVar[Mapping[str, tuple[str, ...]]] = {}

    # What the settings were built from (the environment's values, then the overrides, by
    # place), so that with_overrides builds a copy as if the change had been given first.
    _given: dict[str, Any] = PrivateAttr(default_factory=dict)

    data_dir: Path = Path("var")
    """The data folder: SQLite database, model artifacts, embedding cache."""
    database_url: str = ""
    """Empty: SQLite in the data folder; else e.g. `postgresql+psycopg://user:pass@host/db`.
    `DATABASE_URL` works too; this wins when both are set."""
    redis_url: str = ""
    """The Celery broker and result backend, and the rate limits' counts (memory when unset,
    except under `replyguard run`). Empty: an embedded redis-server in the data folder
    (worker/). `REDIS_URL` works too; this wins when both are set."""
    # SQLite's WAL needs local files: keep it local when the data folder is shared storage.
    cache_dir: str = ""
    """The embedding cache's folder; empty: `<data_dir>/cache`. Keep it on a local disk."""

    # Serving
    default_k: int = 3
    """Suggestions per request; evaluations measure diversity on the first this-many."""
    max_k: int = 10
    """The most suggestions a request may ask for (and report shown in feedback); evaluations
    look this deep."""
    max_body_bytes: int = 256 * 1024
    """The largest request body (413 over it)."""
    max_examples_per_request: int = 1_000
    """The most examples one import takes (413 over it)."""
    record_incoming: bool = True
    """Keep incoming messages for later generations."""
    incoming_retention: int = 100_000
    """Incoming messages kept (the oldest go first)."""
    production_check_seconds: float = 1.0
    """How often a web process checks whether production, the curated replies or the blocks
    changed."""
    key_cache_seconds: float = 5.0
    """An API key checked this recently is not looked up again, so a revoked key works this
    long at most in a web process that just used it; 0 looks every key up every time."""
    # Each pass is one thread (webapp/batching.py). Two let one batch be scored while the next
    # is encoded: best of 1-3 on 2 cores.
    batch_threads: int = 2
    """Encoder passes a web process runs at once; concurrent requests share each pass."""
    # Left out of repr so it never reaches a log line.
    secret_key: str = Field(default="", repr=False)
    """Signs the dashboard's session cookies. Empty: a random key kept in
    `<data_dir>/secret_key`, shared by the web processes of one machine; several machines
    behind one address must share one key."""
    secure_cookies: bool = False
    """The dashboard's session cookie over HTTPS only: off for plain HTTP on one machine
    (`make run`), on wherever a TLS proxy fronts the service."""

    # Rate limits (webapp/limits.py), in Flask-Limiter's syntax: "N/second|minute|hour|day",
    # several joined by ";" (all must hold). Counted in Redis when REDIS_URL is set, else in
    # each web process's memory.
    # A guard for the server, not a quota: about half of what the default deployment serves
    # (682 req/s at 32 clients on 2 cores, docs/benchmarks.md: 41,000 a minute), so no runaway
    # or leaked key can take the whole server from the others, while a real app runs out of
    # capacity before it meets the limit.
    rate_limit: str = "20000/minute"
    """Requests per API key and endpoint on every /v1 endpoint; empty: no limit."""
    # How much one key can write into the training data. A user taps at most one suggestion
    # per message, and people use a suggestion for about one reply in ten (Smart Reply,
    # Kannan et al. 2016), so 10,000 feedback a day is an app asking for about 100,000
    # suggestions a day (10,000 daily users getting ten messages each); its average is 7 a
    # minute, and 60 a minute leaves room for peak hours.
    rate_limit_feedback: str = "60/minute;10000/day"
    """POST /v1/feedback requests per API key; empty: no limit."""
    # Per request of up to max_examples_per_request rows: a script importing 100,000 rows in
    # batches of 1,000 takes under four minutes, and a key imports at most a million rows a
    # day. Larger files go through `replyguard data import`, which has no limit.
    rate_limit_imports: str = "30/minute;1000/day"
    """POST /v1/examples requests per API key (reviewer and admin keys); empty: no limit."""
    # Keys are 256-bit random, so this is not what keeps them safe; it stops a script from
    # hammering the key lookup while leaving a person ten typos a minute.
    rate_limit_sign_in: str = "10/minute;100/day"
    """Failed dashboard sign-ins per client address (successful ones are not counted); empty:
    no limit."""

    # Notifications (worker/notify.py, docs/operations.md): a signed webhook, sent by a worker.
    notify_urls: str = ""
    """Webhook URLs to notify when a generation is blocked, warns or fails and when production
    changes by override or rollback, separated by spaces or commas; empty sends nothing."""
    # Left out of repr, like secret_key.
    notify_secret: str = Field(default="", repr=False)
    """The shared secret of each body's HMAC-SHA256 signature (`X-ReplyGuard-Signature`);
    required with `notify_urls`: nothing is sent unsigned."""
    notify_events: str = (
        "generation.blocked,generation.warned,generation.failed,"
        "production.override,production.rollback"
    )
    """The events sent, comma-separated; `generation.passed` (a promotion by the gate) is
    there to opt in to."""
    # Waits of 10+20+40+80+160 s ride out about five minutes of a receiver's downtime (a
    # restart, a deploy) before the delivery is given up.
    notify_max_attempts: int = 6
    """Attempts per notification delivery."""
    notify_backoff_seconds: float = 10.0
    """The wait after the first failed delivery attempt, doubled after each."""
    notify_timeout_seconds: float = 10.0
    """Each delivery attempt's deadline, for the whole request and answer (core/webhooks.py)."""
    public_url: str = "http://127.0.0.1:8000"
    """Where people open the dashboard: the links in notifications start with it. The default
    is where `replyguard run` and `replyguard serve` listen."""

    # Operations (docs/operations.md). Left out of repr so it never reaches a log line.
    metrics_token: str = Field(default="", repr=False)
    """Empty: GET /metrics answers only requests made on this machine (loopback, not forwarded
    by a proxy); set: any caller that sends `Authorization: Bearer <token>`."""
    # A scrape every 15 s reads the database at most once per scrape, and a burst of scrapes
    # does not reread it.
    metrics_cache_seconds: float = 5.0
    """How long /metrics reuses, in each web process, what it read from the database."""
    log_level: str = "INFO"
    """The level of the JSON log lines every process writes to standard error."""

    # One value, so one variable reruns a whole generation the same way.
    seed: int = DEFAULT_SEED
    """Every seeded choice: splits, samples, training, dedup, evaluation, the demo's slices;
    the components' own seeds follow it."""

    triggering_target_coverage: float = 0.8
    """The share of held-out training messages a model is calibrated to answer; it abstains on
    the rest, the least confident (models.suggester.Triggering)."""
    demo_dataset: str = "chitchat"
    """The demo data (docs/demo-data.md): `chitchat`, two-person chat, or `chatterbot`, the
    small corpus the tests train on."""
    # Chosen so that `make run` on an empty data folder serves within about a minute on two
    # cores: bench/demo_size.py, docs/benchmarks.md.
    demo_pairs: int = 10_000
    """Chitchat pairs the demo keeps (of 131,569; `data load-demo --full` loads them all)."""
    demo_skew: float = 1.0
    """Zipf exponent of the demo's niche sizes: the niche of rank r gets a share ~ r**-skew."""
    demo_traffic_fraction: float = 0.2
    """Share of each demo niche's messages loaded as incoming traffic, replies hidden."""

    # Generations
    synthesize_max_prompts: int = Field(default=2_000, ge=0)
    """Incoming messages the production model labels per generation: a seeded uniform sample
    of the traffic (worker/stages/snapshot.py); 0 labels none (no self-training). A negative
    value is refused when the settings are loaded, not in the middle of a generation."""
    synthesize_temperature: float = 0.0
    """0 writes the top suggestion; above 0 samples among the top suggestions."""
    generation_schedule: str = ""
    """Cron expression (minute hour day month weekday) for scheduled generations; empty: off."""

    benchmark_fraction: float = 0.12
    """Share of human examples set aside as the benchmark (never trained on) when the first
    model is trained."""
    benchmark_min_per_niche: int = 3
    """Benchmark examples per niche, at least."""
    anchor_fraction: float = 0.3
    """Share of human examples every generation must train on (the anchor), by niche."""
    anchor_min_per_niche: int = 5
    """Anchor examples per niche, at least."""

    @property
    def database(self) -> str:
        """``database_url``, or SQLite in the data folder when it is empty."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'replyguard.sqlite3').resolve()}"

    @property
    def models_dir(self) -> Path:
        """Where model artifacts live: ``<data_dir>/models``."""
        return self.data_dir / "models"

    @property
    def embedding_cache(self) -> Path:
        """The embedding cache's file, in ``cache_dir`` (empty: ``<data_dir>/cache``)."""
        return (
            Path(self.cache_dir) if self.cache_dir else self.data_dir / "cache"
        ) / "embeddings.sqlite3"

    @model_validator(mode="wrap")
    @classmethod
    def _follow_and_remember(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # Nested fields that follow a flat one unless given themselves (:meth:`followers`),
        # and what the settings were built from, for with_overrides.
        settings = handler(data)
        if not isinstance(data, Mapping):
            return settings
        followed = cls.followers(settings)
        if followed:
            settings = handler(_deep_merge(followed, data))
        settings._given = dict(data)
        return settings

    @classmethod
    def followers(cls, settings: Self) -> dict[str, Any]:
        """Nested values that follow flat settings unless given themselves, by field (none
        here: the root's components follow the seed)."""
        return {}

    @classmethod
    def places(cls) -> list[Place]:
        """The place of every setting, in field order: a flat field's name, or a nested
        component's field name and then each of the component's (dataclass) fields."""
        found: list[Place] = []
        for name, field in cls.model_fields.items():
            component = field.annotation
            if isinstance(component, type) and dataclasses.is_dataclass(component):
                found += [(name, inner.name) for inner in dataclasses.fields(component)]
            else:
                found.append((name,))
        return found

    @classmethod
    def variables(cls) -> set[str]:
        """Every environment variable the settings read: each place's, and the other names
        (:data:`UNPREFIXED`, ``RENAMED``)."""
        return {variable(place) for place in cls.places()} | set(UNPREFIXED) | set(cls.RENAMED)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Keyword arguments, then the process's variables; no .env or secret files.
        return init_settings, Environment(cls)

    @classmethod
    def load(
        cls, overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
    ) -> Self:
        """Defaults, then the ``REPLYGUARD_*`` variables of ``environ`` (None: the process's),
        then ``overrides`` (field names, nested as the fields are:
        ``{"adapter": {"epochs": 2}}``).

        Raises:
            SettingsError: an unknown name, or a value that cannot be used; the message names
                the variable (or override) and what to give instead.

        Example:
            >>> CoreSettings.load({"data_dir": "/tmp/rg"}, environ={}).data_dir
            PosixPath('/tmp/rg')
        """
        source = Environment(cls, environ)
        try:
            values = source()
        except SourceError as exc:  # a whole component given as JSON that is not JSON
            raise SettingsError(f"{exc}: give a JSON object of its fields") from None
        return cls._build(_deep_merge(values, overrides or {}), source.given, overrides or {})

    def with_overrides(self, **overrides: Any) -> Self:
        """A copy with these settings changed (as :meth:`load`'s ``overrides``), built as if
        they had been given with the others: a changed ``seed`` reaches every component that
        follows it. The environment is not read again.

        Raises:
            SettingsError: as :meth:`load`.
        """
        return self._build(_deep_merge(self._given, overrides), {}, overrides)

    @classmethod
    def _build(
        cls,
        values: dict[str, Any],
        variables: Mapping[Place, tuple[str, str]],
        overrides: Mapping[str, Any],
    ) -> Self:
        try:
            settings = cls.model_validate(values)
        except ValidationError as exc:
            named: dict[Place, tuple[str, Any]] = {
                (name,): (name, v) for name, v in overrides.items()
            }
            given = {**variables, **named}
            raise SettingsError(_explain(cls, exc, given)) from None
        return settings


def _deep_merge(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``update`` on top, mappings merged key by key (``update`` wins)."""
    merged = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
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
    cls: type[CoreSettings], error: ValidationError, given: Mapping[Place, tuple[str, Any]]
) -> str:
    """One line about the first problem: which variable (or override), its value, what is
    wrong and what to give instead."""
    problem = error.errors()[0]
    loc = tuple(str(part) for part in problem["loc"])
    if problem["type"] == "extra_forbidden":
        return (
            f"unknown setting {'.'.join(loc)!r}: the names are docs/settings.md's variables, "
            f"in lower case without {ENV_PREFIX}, nested as the fields are"
        )
    # The settings given at the bad value's place (or, for a whole component refused by its
    # own checks, inside it).
    named = [place for place in given if loc[: len(place)] == place or place[: len(loc)] == loc]
    if not named:
        return f"settings: {'.'.join(loc)}: {problem['msg']}"
    place = named[0]
    label, raw = given[place]
    # A variable can be unset; an override (label: the bare name) is the caller's to fix.
    unset = f", or unset it for the default ({_default(cls, place)})" if label != place[0] else ""
    if problem["type"] in _PARSING:
        kind, hint = _PARSING[problem["type"]]
        inner = f" at {'.'.join(loc[len(place) :])}" if len(loc) > len(place) else ""
        return f"{label}={raw!r} is not a valid {kind}{inner}: give {hint}{unset}"
    if problem["type"] == "greater_than_equal" and problem.get("ctx", {}).get("ge") == 0:
        return f"{label}={raw} is negative: give 0 or more{unset}"
    message = str(problem["msg"]).removeprefix("Value error, ")
    others = "".join(f", {given[p][0]}={given[p][1]!r}" for p in named[1:])
    return f"{label}={raw!r}{others}: {message}{unset}"


def _default(cls: type[CoreSettings], place: Place) -> Any:
    """The default at ``place``: the field's, or the field of the nested component's default."""
    value: Any = cls.model_fields[place[0]].get_default(call_default_factory=True)
    for part in place[1:]:
        value = getattr(value, part, None)
    return value
