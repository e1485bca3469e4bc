"""The service's settings: one tree, loaded once per process.

:class:`Settings` is core's flat settings (core.settings.CoreSettings: paths, database,
serving, limits, notifications, the demo data, the reservoir, the seed) with each model and
safeguard component's own config as a nested field. A component's defaults live in its
config class, next to the component (``models.adapter.AdapterConfig`` ...); a nested field is
``REPLYGUARD_<FIELD>__<NESTED>`` in the environment (``REPLYGUARD_ADAPTER__EPOCHS``), and the
flat names earlier releases documented keep working through :attr:`Settings.RENAMED`. It
lives in ``worker``, the lowest package that may import both ``models`` and ``safeguards``
(docs/architecture.md); libraries take their own config (``settings.dedup``), never this class.

Example:
    >>> settings = load_settings({"adapter": {"epochs": 2}}, environ={})
    >>> settings.adapter.epochs, settings.adapter.seed == settings.seed
    (2, True)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from typing import ClassVar

from pydantic import field_validator

from core.settings import CoreSettings
from core.settings import SettingsError
from models.adapter import AdapterConfig
from models.encoder import EncoderConfig
from models.reply_rules import ResponseSetConfig
from models.suggester import RetrievalConfig
from safeguards.dedup import DedupConfig
from safeguards.evaluator import EvaluationConfig
from safeguards.gate import Tolerances
from safeguards.metrics import default_tolerances
from safeguards.mixing import DEFAULT_SYNTHETIC_CAP
from safeguards.quality import QualityConfig

__all__ = ["Settings", "SettingsError", "load_settings"]


class Settings(CoreSettings):
    """The whole settings tree: :class:`core.settings.CoreSettings` plus the components'
    configs. Load it with :func:`load_settings`; docs/settings.md lists every variable."""

    encoder: EncoderConfig = EncoderConfig()
    """How texts are encoded (`models.encoder.EncoderConfig`)."""
    adapter: AdapterConfig = AdapterConfig()
    """How the adapter is trained (`models.adapter.AdapterConfig`); `epochs` is the longest
    checkpoint training may choose (models/selection.py). `seed` follows `REPLYGUARD_SEED`."""
    retrieval: RetrievalConfig = RetrievalConfig()
    """How suggestions are retrieved (`models.suggester.RetrievalConfig`)."""
    response_set: ResponseSetConfig = ResponseSetConfig()
    """Which replies the response set serves (`models.reply_rules.ResponseSetConfig`)."""
    quality: QualityConfig = QualityConfig()
    """The quality rules a synthetic reply must pass (`safeguards.quality.QualityConfig`)."""
    dedup: DedupConfig = DedupConfig()
    """How synthetic examples are deduplicated (`safeguards.dedup.DedupConfig`). `seed`
    follows `REPLYGUARD_SEED`."""
    synthetic_cap: float = DEFAULT_SYNTHETIC_CAP
    """Largest share of model-influenced examples in a training set (`safeguards.mixing`)."""
    evaluation: EvaluationConfig = EvaluationConfig()
    """How every model is evaluated (`safeguards.evaluator.EvaluationConfig`). Unless set,
    `depth` follows `REPLYGUARD_MAX_K` (at least 3), `diversity_k` `REPLYGUARD_DEFAULT_K` (what
    a user is shown), `primary` is `similarity@<diversity_k>` and `seed` follows
    `REPLYGUARD_SEED`."""
    gate: Tolerances = Tolerances()
    """The gate's tolerances (`safeguards.gate.Tolerances`). `per_metric` is JSON, metric name
    to relative tolerance, on top of the gate's defaults: `{"vendi": 0.1}` lets Vendi fall 10%
    before the gate blocks; names as in a decision's figures."""

    # The flat names earlier releases gave the nested fields (README.md's table until the
    # settings became nested), kept working with a deprecation line: old -> new variables.
    # The diversity ceiling also set the response set's clusters (one "say the same thing"
    # cosine), so its old name sets both.
    RENAMED: ClassVar[Mapping[str, tuple[str, ...]]] = {
        "REPLYGUARD_ENCODER_PATH": ("REPLYGUARD_ENCODER__PATH",),
        "REPLYGUARD_ENCODER_BACKEND": ("REPLYGUARD_ENCODER__BACKEND",),
        "REPLYGUARD_ENCODER_THREADS": ("REPLYGUARD_ENCODER__THREADS",),
        "REPLYGUARD_ENCODE_BATCH_SIZE": ("REPLYGUARD_ENCODER__BATCH_SIZE",),
        "REPLYGUARD_EMBEDDING_CACHE_SIZE": ("REPLYGUARD_ENCODER__CACHE_SIZE",),
        "REPLYGUARD_ADAPTER_EPOCHS": ("REPLYGUARD_ADAPTER__EPOCHS",),
        "REPLYGUARD_ADAPTER_BATCH_SIZE": ("REPLYGUARD_ADAPTER__BATCH_SIZE",),
        "REPLYGUARD_ADAPTER_LEARNING_RATE": ("REPLYGUARD_ADAPTER__LEARNING_RATE",),
        "REPLYGUARD_ADAPTER_TEMPERATURE": ("REPLYGUARD_ADAPTER__TEMPERATURE",),
        "REPLYGUARD_KNN_NEIGHBOURS": ("REPLYGUARD_RETRIEVAL__KNN_NEIGHBOURS",),
        "REPLYGUARD_CANDIDATES": ("REPLYGUARD_RETRIEVAL__CANDIDATES",),
        "REPLYGUARD_DIVERSITY_CEILING": (
            "REPLYGUARD_RETRIEVAL__DIVERSITY_CEILING",
            "REPLYGUARD_RESPONSE_SET__CLUSTER_THRESHOLD",
        ),
        "REPLYGUARD_EXACT_INDEX_LIMIT": ("REPLYGUARD_RETRIEVAL__EXACT_INDEX_LIMIT",),
        "REPLYGUARD_RESPONSE_MAX_CHARS": ("REPLYGUARD_RESPONSE_SET__MAX_CHARS",),
        "REPLYGUARD_RESPONSE_MAX_WORDS": ("REPLYGUARD_RESPONSE_SET__MAX_WORDS",),
        "REPLYGUARD_RESPONSE_MIN_SUPPORT": ("REPLYGUARD_RESPONSE_SET__MIN_SUPPORT",),
        "REPLYGUARD_QUALITY_MIN_REPLY_CHARS": ("REPLYGUARD_QUALITY__MIN_REPLY_CHARS",),
        "REPLYGUARD_QUALITY_MAX_REPLY_CHARS": ("REPLYGUARD_QUALITY__MAX_REPLY_CHARS",),
        "REPLYGUARD_QUALITY_MIN_RELEVANCE": ("REPLYGUARD_QUALITY__MIN_RELEVANCE",),
        "REPLYGUARD_DEDUP_THRESHOLD": ("REPLYGUARD_DEDUP__THRESHOLD",),
        "REPLYGUARD_MATCH_THRESHOLD": ("REPLYGUARD_EVALUATION__MATCH_THRESHOLD",),
        "REPLYGUARD_GATE_TOLERANCES": ("REPLYGUARD_GATE__PER_METRIC",),
        "REPLYGUARD_GATE_SENSITIVE_RULE": ("REPLYGUARD_GATE__SENSITIVE_RULE",),
    }

    @field_validator("evaluation", mode="before")
    @classmethod
    def _cut_offs_as_json(cls, value: Any) -> Any:
        return _json_field(value, "ks", "a list of cut-offs, e.g. [1, 3]")

    @field_validator("gate", mode="before")
    @classmethod
    def _on_the_gates_defaults(cls, value: Any) -> Any:
        # Tolerances by metric name go on top of the gate's defaults, and a name the metric
        # registry does not know is refused here, not when the first generation reaches it.
        value = _json_field(
            value, "per_metric", 'an object of metric name to tolerance, e.g. {"vendi": 0.1}'
        )
        if not isinstance(value, Mapping) or "per_metric" not in value:
            return value
        given = value["per_metric"]
        Tolerances.overridden(given)
        return {**value, "per_metric": {**default_tolerances(), **given}}

    @classmethod
    def followers(cls, settings: Settings) -> dict[str, Any]:
        """The one seed reaches every seeded component, and the evaluation looks as deep as a
        client may ask and measures what a user is shown, unless they are given themselves."""
        depth = max(settings.max_k, 3)
        shown = min(settings.default_k, depth)
        return {
            "adapter": {"seed": settings.seed},
            "dedup": {"seed": settings.seed},
            "evaluation": {
                "seed": settings.seed,
                "depth": depth,
                "diversity_k": shown,
                # The closeness of the best suggestion a user is shown.
                "primary": f"similarity@{shown}",
            },
        }


def _json_field(value: Any, name: str, hint: str) -> Any:
    """``value`` with its field ``name`` read as JSON when it is text (from a variable:
    pydantic-settings decodes JSON only inside pydantic models, and the components are
    dataclasses); an empty text is an empty object.

    Raises:
        ValueError: text that is not JSON, with what to give (``hint``).
    """
    if not isinstance(value, Mapping) or not isinstance(value.get(name), str):
        return value
    text = value[name]
    try:
        return {**value, name: json.loads(text) if text.strip() else {}}
    except json.JSONDecodeError:
        raise ValueError(f"is not JSON: give {hint}") from None


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the ``REPLYGUARD_*`` variables of ``environ`` (None: the process's),
    then ``overrides`` by field name, nested as the fields are (``{"adapter": {"epochs": 2}}``).

    Raises:
        SettingsError: an unknown name or an unusable value, in one line naming the variable.

    Example:
        >>> load_settings({"data_dir": "/tmp/rg"}, environ={}).data_dir
        PosixPath('/tmp/rg')
    """
    return Settings.load(overrides, environ)
