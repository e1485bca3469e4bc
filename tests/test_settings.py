from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from core.settings import DEFAULT_SEED
from core.settings import ENV_PREFIX
from core.settings import CoreSettings
from core.settings import SettingsError
from core.settings import variable
from models.adapter import AdapterConfig
from models.encoder import EncoderConfig
from models.response_set import ResponseSetConfig
from models.suggester import RetrievalConfig
from safeguards.dedup import DedupConfig
from safeguards.evaluate import EvaluationConfig
from safeguards.gate import NOISY_FIGURES
from safeguards.gate import Tolerances
from safeguards.quality import QualityConfig
from worker.settings import Settings
from worker.settings import load_settings

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_without_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in Settings.places():
        monkeypatch.delenv(variable(name), raising=False)
        monkeypatch.delenv(ENV_PREFIX + name.upper(), raising=False)
    settings = load_settings(environ={})
    # Built directly, the settings read the process's environment (pydantic-settings' way).
    assert settings == Settings()
    monkeypatch.setenv("REPLYGUARD_ADAPTER_EPOCHS", "3")
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
    ],
)
def test_bad_environment_values_name_the_variable(env: dict[str, str], fragment: str) -> None:
    with pytest.raises(SettingsError, match=fragment):
        load_settings(environ=env)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        load_settings({"colour": "red"}, environ={})


def test_zero_prompts_is_a_setting_not_an_error() -> None:
    assert (
        load_settings(environ={"REPLYGUARD_SYNTHESIZE_MAX_PROMPTS": "0"}).synthesize_max_prompts
        == 0
    )


def test_every_component_default_comes_from_its_component() -> None:
    # Nothing in the settings repeats a component's default: unset, each nested config is
    # exactly the component's own, and the flat settings that feed components are theirs.
    settings = load_settings(environ={})
    assert settings.encoder == EncoderConfig()
    assert settings.adapter == AdapterConfig()
    assert settings.retrieval == RetrievalConfig()
    assert settings.response_set == ResponseSetConfig()
    assert settings.quality == QualityConfig()
    assert settings.dedup == DedupConfig()
    assert settings.evaluation == EvaluationConfig()
    assert settings.tolerances == Tolerances()


def test_one_seed_default_reaches_every_seeded_component() -> None:
    seeded = [AdapterConfig(), DedupConfig(), EvaluationConfig()]
    assert {config.seed for config in seeded} == {DEFAULT_SEED}
    assert load_settings(environ={}).seed == DEFAULT_SEED
    settings = load_settings(environ={"REPLYGUARD_SEED": "7"})
    assert (settings.adapter.seed, settings.dedup.seed, settings.evaluation.seed) == (7, 7, 7)


def test_todays_variables_reach_the_nested_fields() -> None:
    env = {
        "REPLYGUARD_ADAPTER_EPOCHS": "4",
        "REPLYGUARD_ENCODE_BATCH_SIZE": "16",
        "REPLYGUARD_ENCODER_BACKEND": "torch",
        "REPLYGUARD_KNN_NEIGHBOURS": "9",
        "REPLYGUARD_DIVERSITY_CEILING": "0.9",
        "REPLYGUARD_RESPONSE_MIN_SUPPORT": "2",
        "REPLYGUARD_QUALITY_MIN_RELEVANCE": "0.2",
        "REPLYGUARD_DEDUP_THRESHOLD": "0.9",
        "REPLYGUARD_MATCH_THRESHOLD": "0.7",
    }
    settings = load_settings({"adapter_batch_size": 32}, environ=env)
    assert (settings.adapter.epochs, settings.adapter.batch_size) == (4, 32)
    assert (settings.encoder.batch_size, settings.encoder.backend) == (16, "torch")
    assert settings.retrieval.knn_neighbours == 9
    # One "says the same thing" cosine: the suggestions' ceiling and the response set's clusters.
    assert settings.retrieval.diversity_ceiling == settings.response_set.cluster_threshold == 0.9
    assert settings.response_set.min_support == 2
    assert settings.quality.min_relevance == 0.2
    assert settings.dedup.threshold == 0.9
    assert settings.evaluation.match_threshold == 0.7


def test_with_overrides_changes_one_nested_field_and_keeps_the_rest() -> None:
    settings = load_settings(environ={"REPLYGUARD_ADAPTER_BATCH_SIZE": "32"})
    changed = settings.with_overrides(adapter_epochs=1, seed=5)
    assert changed.adapter == dataclasses.replace(settings.adapter, epochs=1, seed=5)
    assert changed.dedup.seed == 5
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
            {"REPLYGUARD_GATE_TOLERANCES": '{"vendi": 1.5}'},
            "tolerance 'vendi' must be in [0, 1), not 1.5",
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
    settings = load_settings(environ={"REPLYGUARD_GATE_TOLERANCES": '{"vendi": 0.2, "mrr@10": 0}'})
    assert settings.tolerances.per_figure == {**NOISY_FIGURES, "vendi": 0.2, "mrr@10": 0.0}
    assert settings.tolerances.relative("mrr@10", "relevance") == 0.0
    # Empty means the defaults of safeguards.gate, with nothing copied into the settings.
    assert load_settings(environ={"REPLYGUARD_GATE_TOLERANCES": ""}).tolerances == Tolerances()


def test_the_core_settings_load_without_the_components() -> None:
    # What core and the gunicorn master use: the flat settings, by the same variables.
    core = CoreSettings.load(environ={"REPLYGUARD_SEED": "3", "REDIS_URL": "redis://r:6379/0"})
    assert (core.seed, core.redis_url) == (3, "redis://r:6379/0")
    with pytest.raises(SettingsError, match="unknown setting 'adapter_epochs'"):
        CoreSettings.load({"adapter_epochs": 2}, environ={})


def test_the_readme_documents_every_variable_and_only_those() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    documented = {
        name for row in rows for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", row.split(" | ")[0])
    }
    assert documented == set(Settings.variables())
    assert len(Settings.variables()) == len(set(Settings.variables()))
