"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

from pathlib import Path

from core.settings import Settings
from core.settings import load_settings

# Small enough to train in a few seconds, large enough for every demo niche.
FAST_TRAINING = {"adapter_epochs": 8}


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings({"data_dir": str(data_dir), **FAST_TRAINING, **overrides}, environ={})
