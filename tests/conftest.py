"""Shared fixtures: the real encoder loaded once, a demo data folder trained once, and a fresh
copy of it (database and artifacts) for every test that writes."""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import subprocess
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_postgresql.executors import PostgreSQLExecutor

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.db import Database
from core.demo import load_demo
from core.keys import create_key
from core.schema import Role
from models.encoder import Encoder
from tests.helpers import FAST_TRAINING
from tests.helpers import launch_worker
from tests.helpers import make_settings
from tests.helpers import migrated
from tests.helpers import wait_for_worker
from tests.pg import PostgresUnavailable
from tests.pg import database
from tests.pg import postgres_server
from webapp.launch import stop_server
from worker.baseline import train_baseline
from worker.broker import embedded_redis_url
from worker.broker import stop_embedded_redis
from worker.context import PipelineContext
from worker.settings import Settings

# Names of the PostgreSQL test databases, unique within the session.
_names = itertools.count(1)


@pytest.fixture(scope="session")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    cache = tmp_path_factory.mktemp("encoder") / "embeddings.sqlite3"
    return Encoder(disk_cache=cache)


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory: pytest.TempPathFactory, encoder: Encoder) -> Path:
    """A data folder with the demo data and the clean baseline in production (read-only)."""
    data_dir = tmp_path_factory.mktemp("trained")
    settings = make_settings(data_dir)
    ctx = PipelineContext.from_settings(settings, encoder)
    with ctx.db.session() as session:
        load_demo(session, settings)
    train_baseline(ctx, actor="tests")
    ctx.db.dispose()
    return data_dir


@pytest.fixture
def data_dir(tmp_path: Path, trained_dir: Path) -> Path:
    """A private copy of the trained data folder."""
    target = tmp_path / "data"
    shutil.copytree(trained_dir, target)
    return target


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def db(settings: Settings) -> Iterator[Database]:
    yield from migrated(settings)


@pytest.fixture
def empty_db(tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated database with nothing in it."""
    yield from migrated(make_settings(tmp_path / "empty"))


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgreSQLExecutor]:
    """One PostgreSQL cluster for the session (tests/pg.py), stopped and deleted at its end."""
    with contextlib.ExitStack() as stack:
        try:
            server = stack.enter_context(postgres_server())
        except PostgresUnavailable as exc:
            pytest.fail(f"PostgreSQL tests need a local PostgreSQL server: {exc}", pytrace=False)
        yield server


@pytest.fixture
def pg_url(pg_server: PostgreSQLExecutor) -> Iterator[str]:
    """An empty database of its own for this test, dropped after it."""
    with database(pg_server, f"replyguard_test_{os.getpid()}_{next(_names)}") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A fresh, migrated database on each backend: the guards must hold on both."""
    overrides: dict[str, object] = {}
    if request.param == "postgresql":
        overrides["database_url"] = request.getfixturevalue("pg_url")
    yield from migrated(make_settings(tmp_path / "store", **overrides))


@pytest.fixture
def app(data_dir: Path, encoder: Encoder):  # type: ignore[no-untyped-def]
    from webapp import create_app

    application = create_app(
        {"data_dir": str(data_dir), **FAST_TRAINING, "production_check_seconds": 0}, encoder=encoder
    )
    application.config["TESTING"] = True
    yield application
    application.extensions["replyguard"].db.dispose()


@pytest.fixture
def client(app):  # type: ignore[no-untyped-def]
    return app.test_client()


def _key(app, role: Role) -> str:  # type: ignore[no-untyped-def]
    with app.extensions["replyguard"].db.session() as session:
        token, _ = create_key(session, f"test-{role.value}", role, "tester")
    return token


@pytest.fixture
def client_headers(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {_key(app, Role.CLIENT)}"}


@pytest.fixture
def reviewer_headers(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {_key(app, Role.REVIEWER)}"}


@pytest.fixture
def admin_headers(app) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {"Authorization": f"Bearer {_key(app, Role.ADMIN)}"}


@pytest.fixture
def redis_url(settings: Settings) -> Iterator[str]:
    """A real redis-server (the embedded one) for this test's data folder."""
    url = embedded_redis_url(settings)
    yield url
    stop_embedded_redis()


@pytest.fixture
def start_worker(
    data_dir: Path, redis_url: str
) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """``start(**env)`` starts one more Celery worker on the test's data folder and Redis
    (its log: ``worker-<n>.log`` in the data folder) and waits until it answers (unless
    ``wait=False``: a worker that takes a task at once cannot answer while it runs it);
    every worker still running is stopped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(wait: bool = True, **env: str) -> subprocess.Popen[bytes]:
        process = launch_worker(data_dir, redis_url, data_dir / f"worker-{len(started)}.log", **env)
        started.append(process)
        if wait:
            wait_for_worker(redis_url, process, workers=sum(p.poll() is None for p in started))
        return process

    yield start
    for process in started:
        if process.poll() is None:
            stop_server(process)


@pytest.fixture
def api(data_dir: Path, encoder: Encoder, redis_url: str) -> Iterator[Any]:
    """The app on the test's data folder and Redis: (test client, reviewer headers, client
    headers)."""
    from webapp import create_app

    app = create_app(
        {"data_dir": str(data_dir), "redis_url": redis_url, "adapter": {"epochs": 8}},
        encoder=encoder,
    )
    with app.extensions["replyguard"].db.session() as session:
        reviewer, _ = create_key(session, "reviewer", Role.REVIEWER, "tester")
        client, _ = create_key(session, "client", Role.CLIENT, "tester")
    yield (
        app.test_client(),
        {"Authorization": f"Bearer {reviewer}"},
        {"Authorization": f"Bearer {client}"},
    )
    app.extensions["replyguard"].db.dispose()
