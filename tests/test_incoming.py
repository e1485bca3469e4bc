"""The background writer of incoming messages: a bad row never costs other rows, the writer
never dies of one, and is started again if it dies anyway."""

from __future__ import annotations

import logging
import time
from typing import Any

import pytest
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from core.db import Database
from core.incoming import IncomingLog
from core.schema import IncomingMessage


def stored(db: Database) -> int:
    with db.session() as session:
        return int(session.scalar(select(func.count(IncomingMessage.id))) or 0)


def wait_until(condition: Any, seconds: float = 30) -> None:
    """Wait for the writer thread (it writes every half second) to reach a state."""
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)


def test_rows_the_database_refuses_are_dropped_alone_and_said(
    store: Database, caplog: pytest.LogCaptureFixture
) -> None:
    log = IncomingLog(store, retention=1_000_000)
    with caplog.at_level(logging.ERROR, logger="core.incoming"):
        for i in range(20):
            log.record(f"before {i}", "chat")
        log.record("x", "\ud800")  # cannot be encoded for the database
        for i in range(20):
            log.record(f"after {i}", None)
        log.record("bad \udcff text", None)
        refused = 2
        if store.url.startswith("postgresql"):
            # PostgreSQL refuses what SQLite stores: a NUL character, a niche over its column.
            log.record("nul \x00 byte", None)
            log.record("long niche", "n" * 101)
            refused = 4
        wait_until(lambda: log.dropped == refused and stored(store) == 40)
    assert stored(store) == 40
    assert log.dropped == refused
    dropped = [r.getMessage() for r in caplog.records if "dropped incoming message" in r.message]
    assert len(dropped) == refused
    assert dropped[0].startswith("dropped incoming message 'x' (niche '\\ud800'): ")
    assert "UnicodeEncodeError" in dropped[0]
    assert dropped[1].startswith("dropped incoming message 'bad \\udcff text' (niche None)")


# The writer's death below is the injected fault, not a failure of the test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_the_writer_is_started_again_if_it_dies(
    empty_db: Database, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    log = IncomingLog(empty_db, retention=1_000_000)
    log.record("first", None)
    wait_until(lambda: stored(empty_db) == 1)
    first = log._thread
    assert first is not None

    def die() -> int:
        raise SystemExit("an injected fault the writer cannot survive")

    monkeypatch.setattr(log, "flush", die)
    first.join(30)
    assert not first.is_alive()
    monkeypatch.undo()
    with caplog.at_level(logging.ERROR, logger="core.incoming"):
        for i in range(5):
            log.record(f"later {i}", None)
    wait_until(lambda: stored(empty_db) == 6)
    assert stored(empty_db) == 6
    assert "the incoming-message writer had stopped; starting it again" in caplog.messages


def test_rows_wait_while_the_database_is_unreachable(
    empty_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = IncomingLog(empty_db, retention=1_000_000)

    def unreachable(rows: Any) -> None:
        raise OperationalError("INSERT", {}, Exception("connection refused"))

    monkeypatch.setattr(log, "_insert", unreachable)
    for i in range(30):
        log.record(f"queued {i}", None)
    assert log.flush() == 0
    assert stored(empty_db) == 0
    monkeypatch.undo()
    wait_until(lambda: stored(empty_db) == 30)
    with empty_db.session() as session:
        kept = list(session.scalars(select(IncomingMessage.message).order_by(IncomingMessage.id)))
    assert kept == [f"queued {i}" for i in range(30)]
