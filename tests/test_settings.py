from __future__ import annotations

import dataclasses
import logging
from functools import reduce
from pathlib import Path
from typing import Any

import pytest

from core.settings import DEFAULT_SEED
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
from safeguards.quality import QualityConfig
from worker import settings_page
from worker.settings import Settings
from worker.settings import load_settings

# Every variable the README's settings table documented before the settings were nested
# (66), with a value other than its default and what that value set then, by attribute path
# on the settings (written down from that release: the evaluation and the gate were
# properties then, ``settings.evaluation`` and ``settings.tolerances``). Each must keep
# working with the same meaning, alone in the environment.
TODAYS_VARIABLES: list[tuple[str, str, dict[str, Any]]] = [
    ("REPLYGUARD_DATA_DIR", "/srv/rg", {"data_dir": Path("/srv/rg")}),
    (
        "DATABASE_URL",
        "postgresql+psycopg://u:p@db/rg",
        {"database_url": "postgresql+psycopg://u:p@db/rg"},
    ),
    ("REDIS_URL", "redis://r:6379/1", {"redis_url": "redis://r:6379/1"}),
    ("REPLYGUARD_CACHE_DIR", "/fast/cache", {"cache_dir": "/fast/cache"}),
    (
        "REPLYGUARD_DEFAULT_K",
        "4",
        {"default_k": 4, "evaluation.diversity_k": 4, "evaluation.primary": "similarity@4"},
    ),
    ("REPLYGUARD_MAX_K", "11", {"max_k": 11, "evaluation.depth": 11}),
    ("REPLYGUARD_MAX_BODY_BYTES", "262145", {"max_body_bytes": 262145}),
    ("REPLYGUARD_MAX_EXAMPLES_PER_REQUEST", "1001", {"max_examples_per_request": 1001}),
    ("REPLYGUARD_RECORD_INCOMING", "false", {"record_incoming": False}),
    ("REPLYGUARD_INCOMING_RETENTION", "100001", {"incoming_retention": 100001}),
    ("REPLYGUARD_PRODUCTION_CHECK_SECONDS", "0.5", {"production_check_seconds": 0.5}),
    ("REPLYGUARD_KEY_CACHE_SECONDS", "2.5", {"key_cache_seconds": 2.5}),
    ("REPLYGUARD_BATCH_THREADS", "3", {"batch_threads": 3}),
    ("REPLYGUARD_SECRET_KEY", "k3y", {"secret_key": "k3y"}),
    ("REPLYGUARD_SECURE_COOKIES", "true", {"secure_cookies": True}),
    ("REPLYGUARD_RATE_LIMIT", "5/second", {"rate_limit": "5/second"}),
    ("REPLYGUARD_RATE_LIMIT_FEEDBACK", "6/minute", {"rate_limit_feedback": "6/minute"}),
    ("REPLYGUARD_RATE_LIMIT_IMPORTS", "7/hour", {"rate_limit_imports": "7/hour"}),
    ("REPLYGUARD_RATE_LIMIT_SIGN_IN", "8/day", {"rate_limit_sign_in": "8/day"}),
    (
        "REPLYGUARD_NOTIFY_URLS",
        "https://hooks.example/rg",
        {"notify_urls": "https://hooks.example/rg"},
    ),
    ("REPLYGUARD_NOTIFY_SECRET", "s3cret", {"notify_secret": "s3cret"}),
    ("REPLYGUARD_NOTIFY_EVENTS", "generation.passed", {"notify_events": "generation.passed"}),
    ("REPLYGUARD_NOTIFY_MAX_ATTEMPTS", "7", {"notify_max_attempts": 7}),
    ("REPLYGUARD_NOTIFY_BACKOFF_SECONDS", "5.0", {"notify_backoff_seconds": 5.0}),
    ("REPLYGUARD_NOTIFY_TIMEOUT_SECONDS", "5.0", {"notify_timeout_seconds": 5.0}),
    ("REPLYGUARD_PUBLIC_URL", "https://rg.example", {"public_url": "https://rg.example"}),
    ("REPLYGUARD_METRICS_TOKEN", "t0ken", {"metrics_token": "t0ken"}),
    ("REPLYGUARD_METRICS_CACHE_SECONDS", "2.5", {"metrics_cache_seconds": 2.5}),
    ("REPLYGUARD_LOG_LEVEL", "DEBUG", {"log_level": "DEBUG"}),
    (
        "REPLYGUARD_SEED",
        "14",
        {"seed": 14, "adapter.seed": 14, "dedup.seed": 14, "evaluation.seed": 14},
    ),
    ("REPLYGUARD_TRIGGERING_TARGET_COVERAGE", "0.4", {"triggering_target_coverage": 0.4}),
    ("REPLYGUARD_DEMO_DATASET", "chatterbot", {"demo_dataset": "chatterbot"}),
    ("REPLYGUARD_DEMO_PAIRS", "10001", {"demo_pairs": 10001}),
    ("REPLYGUARD_DEMO_SKEW", "0.5", {"demo_skew": 0.5}),
    ("REPLYGUARD_DEMO_TRAFFIC_FRACTION", "0.1", {"demo_traffic_fraction": 0.1}),
    ("REPLYGUARD_SYNTHESIZE_MAX_PROMPTS", "2001", {"synthesize_max_prompts": 2001}),
    ("REPLYGUARD_SYNTHESIZE_TEMPERATURE", "0.5", {"synthesize_temperature": 0.5}),
    ("REPLYGUARD_GENERATION_SCHEDULE", "30 3 * * 1", {"generation_schedule": "30 3 * * 1"}),
    ("REPLYGUARD_BENCHMARK_FRACTION", "0.06", {"benchmark_fraction": 0.06}),
    ("REPLYGUARD_BENCHMARK_MIN_PER_NICHE", "4", {"benchmark_min_per_niche": 4}),
    ("REPLYGUARD_ANCHOR_FRACTION", "0.15", {"anchor_fraction": 0.15}),
    ("REPLYGUARD_ANCHOR_MIN_PER_NICHE", "6", {"anchor_min_per_niche": 6}),
    ("REPLYGUARD_SYNTHETIC_CAP", "0.25", {"synthetic_cap": 0.25}),
    ("REPLYGUARD_MATCH_THRESHOLD", "0.4", {"evaluation.match_threshold": 0.4}),
    (
        "REPLYGUARD_GATE_TOLERANCES",
        '{"vendi": 0.2}',
        {
            "gate.per_metric": {
                "coverage": 0.07,
                "distinct_1": 0.12,
                "distinct_2": 0.11,
                "vendi": 0.2,
                "pairwise_distance": 0.07,
            }
        },
    ),
    ("REPLYGUARD_GATE_SENSITIVE_RULE", "false", {"gate.sensitive_rule": False}),
    ("REPLYGUARD_ENCODER_PATH", "/models/mini", {"encoder.path": "/models/mini"}),
    ("REPLYGUARD_ENCODER_BACKEND", "torch", {"encoder.backend": "torch"}),
    ("REPLYGUARD_ENCODER_THREADS", "1", {"encoder.threads": 1}),
    ("REPLYGUARD_ENCODE_BATCH_SIZE", "65", {"encoder.batch_size": 65}),
    ("REPLYGUARD_EMBEDDING_CACHE_SIZE", "50001", {"encoder.cache_size": 50001}),
    ("REPLYGUARD_ADAPTER_EPOCHS", "31", {"adapter.epochs": 31}),
    ("REPLYGUARD_ADAPTER_BATCH_SIZE", "129", {"adapter.batch_size": 129}),
    ("REPLYGUARD_ADAPTER_LEARNING_RATE", "0.001", {"adapter.learning_rate": 0.001}),
    ("REPLYGUARD_ADAPTER_TEMPERATURE", "0.025", {"adapter.temperature": 0.025}),
    ("REPLYGUARD_KNN_NEIGHBOURS", "21", {"retrieval.knn_neighbours": 21}),
    ("REPLYGUARD_CANDIDATES", "51", {"retrieval.candidates": 51}),
    (
        "REPLYGUARD_DIVERSITY_CEILING",
        "0.425",
        {"retrieval.diversity_ceiling": 0.425, "response_set.cluster_threshold": 0.425},
    ),
    ("REPLYGUARD_EXACT_INDEX_LIMIT", "50001", {"retrieval.exact_index_limit": 50001}),
    ("REPLYGUARD_RESPONSE_MAX_CHARS", "41", {"response_set.max_chars": 41}),
    ("REPLYGUARD_RESPONSE_MAX_WORDS", "9", {"response_set.max_words": 9}),
    ("REPLYGUARD_RESPONSE_MIN_SUPPORT", "4", {"response_set.min_support": 4}),
    ("REPLYGUARD_QUALITY_MIN_REPLY_CHARS", "3", {"quality.min_reply_chars": 3}),
    ("REPLYGUARD_QUALITY_MAX_REPLY_CHARS", "501", {"quality.max_reply_chars": 501}),
    ("REPLYGUARD_QUALITY_MIN_RELEVANCE", "0.05", {"quality.min_relevance": 0.05}),
    ("REPLYGUARD_DEDUP_THRESHOLD", "0.475", {"dedup.threshold": 0.475}),
]


def _at(settings: Settings, path: str) -> Any:
    return reduce(getattr, path.split("."), settings)


@pytest.mark.parametrize(("name", "raw", "expected"), TODAYS_VARIABLES)
def test_every_variable_of_the_earlier_table_keeps_its_meaning(
    name: str, raw: str, expected: dict[str, Any]
) -> None:
    settings = load_settings(environ={name: raw})
    assert {path: _at(settings, path) for path in expected} == expected
    assert settings != load_settings(environ={})


def test_the_earlier_table_is_complete_and_every_name_is_still_read() -> None:
    names = [name for name, _, _ in TODAYS_VARIABLES]
    assert len(names) == len(set(names)) == 66
    assert set(names) <= Settings.variables()


def test_an_old_name_logs_a_deprecation_and_the_new_name_wins(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        settings = load_settings(
            environ={"REPLYGUARD_ADAPTER_EPOCHS": "4", "REPLYGUARD_ADAPTER__EPOCHS": "6"}
        )
    assert settings.adapter.epochs == 6
    assert [r.getMessage() for r in caplog.records] == [
        "REPLYGUARD_ADAPTER_EPOCHS is deprecated: set REPLYGUARD_ADAPTER__EPOCHS instead "
        "(docs/settings.md)"
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="core.settings"):
        load_settings(environ={"REPLYGUARD_ADAPTER__EPOCHS": "6", "DATABASE_URL": "sqlite://"})
    assert not caplog.records


def test_the_prefixed_url_wins_over_the_conventional_name() -> None:
    env = {"DATABASE_URL": "postgresql://a/rg", "REPLYGUARD_DATABASE_URL": "postgresql://b/rg"}
    assert load_settings(environ=env).database == "postgresql://b/rg"


def test_nested_variables_and_overrides_use_the_field_names() -> None:
    env = {"REPLYGUARD_ADAPTER__EPOCHS": "4", "REPLYGUARD_EVALUATION__KS": "[1, 5]"}
    settings = load_settings({"adapter": {"batch_size": 32}}, environ=env)
    assert (settings.adapter.epochs, settings.adapter.batch_size) == (4, 32)
    assert settings.evaluation.ks == (1, 5)


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)
    settings = load_settings(environ={})
    # Built directly, the settings read the process's environment (pydantic-settings' way).
    assert settings == Settings()
    monkeypatch.setenv("REPLYGUARD_ADAPTER__EPOCHS", "3")
    assert Settings().adapter.epochs == 3
    assert settings.database.startswith("sqlite:///")
    assert settings.database.endswith("var/replyguard.sqlite3")


def test_environment_then_overrides() -> None:
    env = {
        "REPLYGUARD_DATA_DIR": "/srv/rg",
        "REPLYGUARD_DEFAULT_K": "5",
        "REPLYGUARD_RECORD_INCOMING": "off",
        "DATABASE_URL": "postgresql+psycopg://u:p@db/rg",
    }
    settings = load_settings({"default_k": 2}, environ=env)
    assert settings.data_dir == Path("/srv/rg")
    assert settings.default_k == 2
    assert settings.record_incoming is False
    assert settings.database == "postgresql+psycopg://u:p@db/rg"


@pytest.mark.parametrize(
    ("env", "fragment"),
    [
        ({"REPLYGUARD_DEFAULT_K": "three"}, "REPLYGUARD_DEFAULT_K='three' is not a valid int"),
        ({"REPLYGUARD_RECORD_INCOMING": "maybe"}, "is not a valid bool"),
        ({"REPLYGUARD_SYNTHESIZE_MAX_PROMPTS": "-1"}, "SYNTHESIZE_MAX_PROMPTS=-1 is negative"),
        ({"REPLYGUARD_ADAPTER__EPOCHS": "x"}, "REPLYGUARD_ADAPTER__EPOCHS='x' is not a valid int"),
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        load_settings(environ=env)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings({"colour": "red"}, environ={})
    with pytest.raises(SettingsError, match="epoch"):
        load_settings({"adapter": {"epoch": 2}}, environ={})


def test_zero_prompts_is_a_setting_not_an_error() -> None:
    assert (
        load_settings(environ={"REPLYGUARD_SYNTHESIZE_MAX_PROMPTS": "0"}).synthesize_max_prompts
        == 0
    )


def test_every_component_default_comes_from_its_component() -> None:
    # Nothing in the settings repeats a component's default: unset, each nested config is
    # exactly the component's own.
    settings = load_settings(environ={})
    assert settings.encoder == EncoderConfig()
    assert settings.adapter == AdapterConfig()
    assert settings.retrieval == RetrievalConfig()
    assert settings.response_set == ResponseSetConfig()
    assert settings.quality == QualityConfig()
    assert settings.dedup == DedupConfig()
    assert settings.evaluation == EvaluationConfig()
    assert settings.gate == Tolerances()


def test_one_seed_default_reaches_every_seeded_component() -> None:
    seeded = [AdapterConfig(), DedupConfig(), EvaluationConfig()]
    assert {config.seed for config in seeded} == {DEFAULT_SEED}
    assert load_settings(environ={}).seed == DEFAULT_SEED
    settings = load_settings(environ={"REPLYGUARD_SEED": "7", "REPLYGUARD_DEDUP__SEED": "8"})
    assert (settings.adapter.seed, settings.dedup.seed, settings.evaluation.seed) == (7, 8, 7)


def test_with_overrides_changes_one_nested_field_and_keeps_the_rest() -> None:
    settings = load_settings(environ={"REPLYGUARD_ADAPTER_BATCH_SIZE": "32"})
    changed = settings.with_overrides(adapter={"epochs": 1}, seed=5)
    assert changed.adapter == dataclasses.replace(settings.adapter, epochs=1, seed=5)
    assert changed.dedup.seed == changed.evaluation.seed == 5
    assert settings.adapter.epochs == AdapterConfig().epochs


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"REPLYGUARD_ADAPTER_EPOCHS": "many"},
            "REPLYGUARD_ADAPTER_EPOCHS='many' is not a valid int: give a whole number, "
            "or unset it for the default (30)",
        ),
        (
            {"REPLYGUARD_DEDUP_THRESHOLD": "2"},
            "REPLYGUARD_DEDUP_THRESHOLD='2': threshold is a cosine in [-1, 1], not 2.0, "
            "or unset it for the default (0.95)",
        ),
        (
            {"REPLYGUARD_QUALITY_MIN_REPLY_CHARS": "600"},
            "REPLYGUARD_QUALITY_MIN_REPLY_CHARS='600': reply length range 600..500 is empty",
        ),
        (
            {"REPLYGUARD_GATE_TOLERANCES": "vendi=0.1"},
            "REPLYGUARD_GATE_TOLERANCES='vendi=0.1': is not JSON: give an object",
        ),
        (
            {"REPLYGUARD_GATE__PER_METRIC": '{"vendi": 1.5}'},
            "tolerance 'vendi' must be in [0, 1), not 1.5",
        ),
        (
            {"REPLYGUARD_GATE_TOLERANCES": '{"venid": 0.1, "recall@3": 0.1}'},
            "no metric named 'recall@3', 'venid'; the gate's metrics are those of an evaluation",
        ),
    ],
)
def test_a_bad_component_value_is_one_line_naming_its_variable(
    env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError) as refused:
        load_settings(environ=env)
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_gate_tolerances_override_the_gates_defaults_by_metric() -> None:
    env = {"REPLYGUARD_GATE__PER_METRIC": '{"vendi": 0.2, "mrr@10": 0}'}
    settings = load_settings(environ=env)
    assert settings.gate.per_metric == {**default_tolerances(), "vendi": 0.2, "mrr@10": 0.0}
    assert settings.gate.relative("mrr@10", "relevance") == 0.0
    # Empty means the defaults of safeguards.gate, with nothing copied into the settings.
    assert load_settings(environ={"REPLYGUARD_GATE__PER_METRIC": ""}).gate == Tolerances()


def test_the_core_settings_load_without_the_components() -> None:
    # What core and the gunicorn master use: the flat settings, by the same variables.
    core = CoreSettings.load(environ={"REPLYGUARD_SEED": "3", "REDIS_URL": "redis://r:6379/0"})
    assert (core.seed, core.redis_url) == (3, "redis://r:6379/0")
    with pytest.raises(SettingsError, match="unknown setting 'adapter'"):
        CoreSettings.load({"adapter": {"epochs": 2}}, environ={})


def test_the_settings_page_is_generated_from_the_classes() -> None:
    # docs/settings.md's tables are written by `python -m worker.settings_page`: run it after
    # changing a setting, its default or its docstring.
    committed = settings_page.PAGE.read_text()
    assert committed == settings_page.page(committed), "run: python -m worker.settings_page"
    for name in Settings.variables():
        assert f"`{name}`" in committed


def test_a_component_given_whole_as_json_is_read_and_bad_json_is_one_line() -> None:
    settings = load_settings(environ={"REPLYGUARD_ADAPTER": '{"epochs": 3}'})
    assert settings.adapter == AdapterConfig(epochs=3)
    with pytest.raises(SettingsError, match=r'field "adapter".*give a JSON object'):
        load_settings(environ={"REPLYGUARD_ADAPTER": "{epochs"})


def test_settings_built_directly_keep_the_environment_in_a_changed_copy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in Settings.variables():
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REPLYGUARD_SEED", "4")
    monkeypatch.setenv("REPLYGUARD_DEFAULT_K", "2")
    changed = Settings().with_overrides(seed=9)
    assert (changed.default_k, changed.adapter.seed, changed.evaluation.seed) == (2, 9, 9)
