"""Shared fixtures: the real encoder loaded once, a demo data folder trained once, and a fresh
copy of it (database and artifacts) for every test that writes."""

from __future__ import annotations

import itertools
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from core.db import Database
from core.demo import load_demo
from core.keys import create_key
from core.schema import Role
from core.settings import Settings
from models.encoder import Encoder
from tests.helpers import FAST_TRAINING
from tests.helpers import make_settings
from tests.helpers import migrated
from tests.pg import PostgresServer
from tests.pg import PostgresUnavailable
from worker.baseline import train_baseline
from worker.context import PipelineContext

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
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL cluster for the session, stopped and deleted at its end."""
    server = PostgresServer()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL tests need a local PostgreSQL server: {exc}", pytrace=False)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """An empty database of its own for this test, dropped after it."""
    name = f"replyguard_test_{os.getpid()}_{next(_names)}"
    yield pg_server.create_database(name)
    pg_server.drop_database(name)


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
