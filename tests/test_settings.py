from __future__ import annotations

from pathlib import Path

import pytest

from core.settings import Settings
from core.settings import SettingsError
from core.settings import load_settings


def test_defaults_without_environment() -> None:
    settings = load_settings(environ={})
    assert settings == Settings()
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
