"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from core.db import Database
from core.settings import Settings
from core.settings import load_settings

# Small enough to train in a few seconds, large enough for every demo niche. The demo data is
# the small chatterbot corpus (core/demo.py): the default chitchat demo takes half a minute.
FAST_TRAINING = {
    "adapter_epochs": 8,
    "demo_dataset": "chatterbot",
    # The chatterbot corpus is one-off replies: with the support rule at its default nearly
    # nothing would be served. The rule has tests of its own (tests/test_response_set.py), at
    # its default and at N-1/N.
    "response_min_support": 1,
}


def make_settings(data_dir: Path, **overrides: object) -> Settings:
    return load_settings({"data_dir": str(data_dir), **FAST_TRAINING, **overrides}, environ={})


def migrated(settings: Settings) -> Iterator[Database]:
    """For fixtures (``yield from``): a migrated database, disposed of afterwards."""
    database = Database(settings)
    database.upgrade()
    yield database
    database.dispose()


def at_once(count: int, call: Callable[[int], Any]) -> list[Any]:
    """Run ``call(i)`` for i in range(count) on as many threads, released together."""
    start = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        start.wait()
        results[i] = call(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results
