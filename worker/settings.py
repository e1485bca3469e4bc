"""The service's settings: one tree, loaded once per process.

:class:`Settings` is core's flat settings (core.settings.CoreSettings: paths, database,
serving, limits, notifications, the demo data, the reservoir, the seed) with each model and
safeguard component's own config nested in it. A component's defaults live in its config
class, next to the component (``models.adapter.AdapterConfig`` ...); this module only says
which settings name reaches which field, so today's variables (``REPLYGUARD_ADAPTER_EPOCHS``,
``REPLYGUARD_DEDUP_THRESHOLD`` ...) keep working. It lives in ``worker``, the lowest package
that may import both ``models`` and ``safeguards`` (docs/architecture.md); libraries take
their own config (``settings.dedup``), never this class.

Example:
    >>> settings = load_settings({"adapter_epochs": 2}, environ={})
    >>> settings.adapter.epochs, settings.adapter.seed == settings.seed
    (2, True)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated
from typing import Any
from typing import ClassVar

from pydantic import BeforeValidator
from pydantic import Field
from pydantic import field_validator

from core.settings import CoreSettings
from core.settings import Place
from core.settings import SettingsError
from models.adapter import AdapterConfig
from models.encoder import EncoderConfig
from models.response_set import ResponseSetConfig
from models.suggester import RetrievalConfig
from safeguards.dedup import DedupConfig
from safeguards.evaluator import EvaluationConfig
from safeguards.gate import Tolerances
from safeguards.mixing import DEFAULT_SYNTHETIC_CAP
from safeguards.quality import QualityConfig

__all__ = ["Settings", "SettingsError", "load_settings"]


def _json_object(value: Any) -> Any:
    """A variable's text as JSON; anything else (an override's dict) as it is."""
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value) if value.strip() else {}
    except json.JSONDecodeError:
        raise ValueError(
            'is not JSON: give an object of metric name to tolerance, e.g. {"vendi": 0.1}'
        ) from None


class Settings(CoreSettings):
    """The whole settings tree: :class:`core.settings.CoreSettings` plus the components'
    configs. Load it with :func:`load_settings`; README.md's settings table lists every
    variable."""

    encoder: EncoderConfig = EncoderConfig()
    adapter: AdapterConfig = AdapterConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    response_set: ResponseSetConfig = ResponseSetConfig()
    quality: QualityConfig = QualityConfig()
    dedup: DedupConfig = DedupConfig()
    # Largest share of model-influenced examples in a training set (safeguards.mixing).
    synthetic_cap: float = DEFAULT_SYNTHETIC_CAP
    # A suggestion matches a gold reply when identical or at least this cosine.
    match_threshold: float = EvaluationConfig.match_threshold
    # Relative tolerances of the gate by metric name, on top of safeguards.gate's defaults
    # (REPLYGUARD_GATE_TOLERANCES='{"vendi": 0.1}'); empty keeps the defaults.
    gate_tolerances: Annotated[dict[str, float], BeforeValidator(_json_object)] = Field(
        default_factory=dict
    )
    # The gate blocks a candidate with any inappropriate suggestion for a sensitive everyday
    # message (safeguards.gate, Tolerances.sensitive_rule); REPLYGUARD_GATE_SENSITIVE_RULE=false
    # reports it without blocking.
    gate_sensitive_rule: bool = True

    # The names of today's variables for the nested fields. One value may go to several
    # places: the seed to every seeded component, the diversity ceiling to the response
    # set's clusters too (the same "say the same thing" cosine).
    PLACES: ClassVar[Mapping[str, tuple[Place, ...]]] = {
        "seed": (("seed",), ("adapter", "seed"), ("dedup", "seed")),
        "encoder_path": (("encoder", "path"),),
        "encoder_backend": (("encoder", "backend"),),
        "encoder_threads": (("encoder", "threads"),),
        "encode_batch_size": (("encoder", "batch_size"),),
        "embedding_cache_size": (("encoder", "cache_size"),),
        "adapter_epochs": (("adapter", "epochs"),),
        "adapter_batch_size": (("adapter", "batch_size"),),
        "adapter_learning_rate": (("adapter", "learning_rate"),),
        "adapter_temperature": (("adapter", "temperature"),),
        "knn_neighbours": (("retrieval", "knn_neighbours"),),
        "candidates": (("retrieval", "candidates"),),
        "diversity_ceiling": (
            ("retrieval", "diversity_ceiling"),
            ("response_set", "cluster_threshold"),
        ),
        "exact_index_limit": (("retrieval", "exact_index_limit"),),
        "response_max_chars": (("response_set", "max_chars"),),
        "response_max_words": (("response_set", "max_words"),),
        "response_min_support": (("response_set", "min_support"),),
        "quality_min_reply_chars": (("quality", "min_reply_chars"),),
        "quality_max_reply_chars": (("quality", "max_reply_chars"),),
        "quality_min_relevance": (("quality", "min_relevance"),),
        "dedup_threshold": (("dedup", "threshold"),),
    }

    @field_validator("gate_tolerances")
    @classmethod
    def _tolerances_usable(cls, value: dict[str, float]) -> dict[str, float]:
        # Refused here, by the gate's own rule, not when the first generation reaches it.
        Tolerances.overridden(value)
        return value

    @property
    def evaluation(self) -> EvaluationConfig:
        """How every model is evaluated: as deep as a client may ask (``max_k``, at least 3)
        and diversity on the first ``default_k`` suggestions, what a user is shown."""
        depth = max(self.max_k, 3)
        return EvaluationConfig(
            depth=depth,
            match_threshold=self.match_threshold,
            diversity_k=min(self.default_k, depth),
            seed=self.seed,
        )

    @property
    def tolerances(self) -> Tolerances:
        """The gate's tolerances: safeguards.gate's defaults, ``gate_tolerances`` and
        ``gate_sensitive_rule``."""
        return Tolerances.overridden(self.gate_tolerances, sensitive_rule=self.gate_sensitive_rule)


def load_settings(
    overrides: Mapping[str, Any] | None = None, environ: Mapping[str, str] | None = None
) -> Settings:
    """Defaults, then the ``REPLYGUARD_*`` variables of ``environ`` (None: the process's),
    then ``overrides`` by flat name (``{"adapter_epochs": 2}``).

    Raises:
        SettingsError: an unknown name or an unusable value, in one line naming the variable.

    Example:
        >>> load_settings({"data_dir": "/tmp/rg"}, environ={}).data_dir
        PosixPath('/tmp/rg')
    """
    return Settings.load(overrides, environ)
