"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from core.db import Database
from core.settings import Settings
from core.settings import load_settings

# Small enough to train in a few seconds, large enough for every demo niche. The demo data is
# the small chatterbot corpus (core/demo.py): the default chitchat demo takes half a minute.
FAST_TRAINING = {"adapter_epochs": 8, "demo_dataset": "chatterbot"}


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings({"data_dir": str(data_dir), **FAST_TRAINING, **overrides}, environ={})


def migrated(settings: Settings) -> Iterator[Database]:
    """For fixtures (``yield from``): a migrated database, disposed of afterwards."""
    database = Database(settings)
    database.upgrade()
    yield database
    database.dispose()
