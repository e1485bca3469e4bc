"""The storage promises and a whole generation, on a real PostgreSQL server.

The rest of the suite runs on SQLite; production runs on PostgreSQL, where the triggers, the
partial unique index and the generation lock are different SQL. One throwaway cluster serves
the whole session (tests/pg.py, on pytest-postgresql); every test gets its own empty database.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func
from sqlalchemy import inspect
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from core.db import Database
from core.db import alembic_config
from core.demo import chatterbot_rows
from core.demo import load_with_traffic
from core.ingest import ExampleIn
from core.provenance import Provenance
from core.schema import Base
from core.schema import Example
from core.schema import Generation
from core.schema import GenerationStatus
from core.schema import ModelStatus
from core.schema import ModelVersion
from core.schema import SyntheticCandidate
from models.artifact import verify
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from tests.helpers import make_settings
from tests.helpers import migrated
from worker import pipeline
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.pipeline import GenerationBusy
from worker.pipeline import run_generation
from worker.pipeline import start_generation
from worker.promotion import override
from worker.settings import Settings

pytestmark = pytest.mark.integration

TABLES = {
    "alembic_version",
    "api_keys",
    "audit_log",
    "curated_replies",
    "examples",
    "generation_stages",
    "generations",
    "incoming_messages",
    "intent_edits",
    "reply_blocks",
    "model_versions",
    "reservoir",
    "synthetic_candidates",
    "webhook_attempts",
    "webhook_deliveries",
}
# Demo pairs per niche loaded for the whole-generation test.
DEMO_PER_NICHE = 15


@pytest.fixture
def pg_settings(tmp_path: Path, pg_url: str) -> Settings:
    """Artifacts in a temporary folder, the database on PostgreSQL."""
    return make_settings(tmp_path / "data", database_url=pg_url)


@pytest.fixture
def pg_db(pg_settings: Settings) -> Iterator[Database]:
    yield from migrated(pg_settings)


# ---------------------------------------------------------------------------------------
# Migrations


def test_migrations_reach_head_twice_and_match_the_models(pg_settings: Settings) -> None:
    db = Database(pg_settings)
    assert db.engine.dialect.name == "postgresql"
    try:
        db.upgrade()
        db.upgrade()  # safe on every start: the second run changes nothing
        head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()
        with db.engine.connect() as connection:
            assert set(inspect(connection).get_table_names()) == TABLES
            assert connection.scalar(text("SELECT version_num FROM alembic_version")) == head
            assert connection.scalar(text("SELECT count(*) FROM alembic_version")) == 1
            # The migrations create what the models describe (no autogenerate difference).
            diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
            assert diff == []
            triggers = set(
                connection.scalars(
                    text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname")
                )
            )
            assert triggers == {
                "audit_log_append_only",
                "audit_log_no_truncate",
                "examples_provenance_immutable",
                "reservoir_human_only",
            }
            index = connection.scalar(
                text(
                    "SELECT indexdef FROM pg_indexes "
                    "WHERE indexname = 'ux_model_versions_one_production'"
                )
            )
            assert "UNIQUE" in index
            assert "WHERE" in index
            assert "production" in index
    finally:
        db.dispose()


# ---------------------------------------------------------------------------------------
# One production model, one generation at a time


def test_the_database_allows_exactly_one_production_model(pg_db: Database) -> None:
    with pg_db.session() as session:
        session.add(ModelVersion(version="v1", generation=0, status="production"))
        session.add(ModelVersion(version="v2", generation=1, status="archived"))
        session.add(ModelVersion(version="v3", generation=2, status="archived"))
    with (
        pytest.raises(IntegrityError, match="ux_model_versions_one_production"),
        pg_db.session() as session,
    ):
        session.add(ModelVersion(version="v4", generation=3, status="production"))
    with (
        pytest.raises(IntegrityError, match="ux_model_versions_one_production"),
        pg_db.engine.begin() as connection,
    ):
        connection.execute(text("UPDATE model_versions SET status = 'production'"))
    with pg_db.session() as session:
        assert production(session).version == "v1"  # type: ignore[union-attr]
        statuses = dict(session.execute(select(ModelVersion.version, ModelVersion.status)).all())
        assert statuses == {"v1": "production", "v2": "archived", "v3": "archived"}


def _ready_for_generations(db: Database) -> None:
    """What start_generation checks: a production model and the clean baseline's row."""
    with db.session() as session:
        session.add(ModelVersion(version="v1", generation=0, status="production"))
        session.add(
            Generation(
                number=0,
                status=GenerationStatus.PASSED.value,
                stage="done",
                candidate_version="v1",
            )
        )


def test_one_generation_at_a_time(pg_db: Database, pg_settings: Settings) -> None:
    _ready_for_generations(pg_db)
    ctx = PipelineContext(pg_settings, pg_db)
    first = start_generation(ctx, "tester")
    with pytest.raises(GenerationBusy, match="one generation runs at a time"):
        start_generation(ctx, "tester")
    # The unique lock column itself refuses a second active generation.
    with (
        pytest.raises(IntegrityError, match="lock"),
        pg_db.session() as session,
    ):
        session.add(Generation(number=99, lock="active"))
    # Finished generations hold no lock (NULLs never collide), and the next one may start.
    with pg_db.session() as session:
        generation = session.get_one(Generation, first)
        generation.status, generation.lock = GenerationStatus.FAILED.value, None
    second = start_generation(ctx, "tester")
    with pg_db.session() as session:
        session.get_one(Generation, second).lock = None
        session.get_one(Generation, second).status = GenerationStatus.FAILED.value
    third = start_generation(ctx, "tester")
    with pg_db.session() as session:
        rows = session.execute(
            select(Generation.number, Generation.lock).order_by(Generation.number)
        ).all()
    assert [tuple(r) for r in rows] == [(0, None), (1, None), (2, None), (3, "active")]
    assert len({first, second, third}) == 3


def test_a_lost_start_race_is_refused_by_the_lock(
    pg_db: Database, pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    _ready_for_generations(pg_db)
    ctx = PipelineContext(pg_settings, pg_db)
    start_generation(ctx, "first")
    # The second caller checks before the first one's row is visible to it: only the
    # database's unique lock can stop it.
    real_active = pipeline.active_generation
    calls = iter([None])
    monkeypatch.setattr(
        pipeline, "active_generation", lambda session: next(calls, None) or real_active(session)
    )
    with pytest.raises(GenerationBusy, match="generation 1 "):
        start_generation(ctx, "second")
    with pg_db.session() as session:
        assert session.scalar(select(func.count()).select_from(Generation)) == 2


# ---------------------------------------------------------------------------------------
# A whole generation


def _human_examples(db: Database) -> set[tuple[int, str]]:
    with db.session() as session:
        rows = session.execute(
            select(Example.id, Example.content_hash).where(
                Example.provenance == Provenance.HUMAN.value
            )
        )
        return {(i, h) for i, h in rows}


def _synthetic_examples(db: Database) -> list[tuple[int | None, str | None]]:
    with db.session() as session:
        rows = session.execute(
            select(Example.generation, Example.model_version).where(
                Example.provenance == Provenance.SYNTHETIC.value
            )
        )
        return [(g, v) for g, v in rows]


def _demo_subset(per_niche: int = DEMO_PER_NICHE) -> list[tuple[str, ExampleIn]]:
    """The first pairs of every demo niche: all 21 niches, an eighth of the corpus (~300
    pairs). Encoding is what a generation spends its time on, and the embedding cache is cold
    when this file runs alone."""
    taken: Counter[str] = Counter()
    subset = []
    for source, example in chatterbot_rows():
        if taken[example.niche] < per_niche:
            taken[example.niche] += 1
            subset.append((source, example))
    return subset


def test_a_whole_generation_runs_on_postgres(tmp_path: Path, pg_url: str, encoder: Encoder) -> None:
    settings = make_settings(tmp_path / "data", database_url=pg_url, adapter={"epochs": 4})
    ctx = PipelineContext.from_settings(settings, encoder)
    try:
        assert ctx.db.engine.dialect.name == "postgresql"
        with ctx.db.session() as session:
            report = load_with_traffic(session, settings, _demo_subset())
            assert report.traffic > 0
            assert session.scalar(select(func.count(func.distinct(Example.niche)))) == 21
        human_before = _human_examples(ctx.db)
        assert len(human_before) == report.added > 150

        baseline, _ = train_baseline(ctx, actor="tests")
        assert baseline.status == ModelStatus.PRODUCTION.value

        generation_id = start_generation(ctx, "tests")
        status = run_generation(ctx, generation_id)

        assert status in {"passed", "warned", "blocked"}, status
        with ctx.db.session() as session:
            generation = session.get_one(Generation, generation_id)
            assert generation.status == status
            assert generation.lock is None
            assert generation.finished_at is not None
            assert generation.error == ""
            assert all(generation.stages[s]["status"] == "done" for s in pipeline.STAGES)
            assert generation.parent_version == baseline.version
            number, candidate = generation.number, generation.candidate_version
            assert candidate is not None
            kept = session.scalar(
                select(func.count())
                .select_from(SyntheticCandidate)
                .where(
                    SyntheticCandidate.generation_id == generation_id,
                    SyntheticCandidate.status == "kept",
                )
            )
            assert kept, "the production model wrote no usable reply: nothing was tested"
        assert _human_examples(ctx.db) == human_before

        if status == "blocked":
            # Production stays, and none of the generation's synthetic replies became data...
            _assert_production(ctx, baseline.version, {candidate: ModelStatus.BLOCKED.value})
            assert _synthetic_examples(ctx.db) == []
            # ... until a reviewer overrides the gate: then all of them, in one transaction.
            with ctx.db.session() as session:
                override(session, settings, candidate, "reviewer", "checked by hand")
        # Promoted (by the gate or the override): the candidate is production and the kept
        # synthetic replies are examples, labelled with the generation and the model that
        # wrote them.
        _assert_production(ctx, candidate, {baseline.version: ModelStatus.ARCHIVED.value})
        synthetic = _synthetic_examples(ctx.db)
        assert 0 < len(synthetic) <= kept
        assert set(synthetic) == {(number, baseline.version)}
        assert _human_examples(ctx.db) == human_before
    finally:
        ctx.db.dispose()


def _assert_production(ctx: PipelineContext, version: str, others: dict[str, str]) -> None:
    """``version`` is the one production model, a finished and intact artifact."""
    with ctx.db.session() as session:
        current = production(session)
        assert current is not None
        assert current.version == version
        verify(artifact_dir(ctx.settings, current), current.checksum)
        statuses = dict(session.execute(select(ModelVersion.version, ModelVersion.status)).all())
    assert list(statuses.values()).count(ModelStatus.PRODUCTION.value) == 1
    assert {v: statuses[v] for v in others} == others
