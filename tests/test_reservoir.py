from __future__ import annotations

from collections import Counter

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from core.db import Database
from core.demo import load_demo
from core.reservoir import benchmark_ids
from core.reservoir import ensure_anchor
from core.reservoir import ensure_benchmark
from core.reservoir import member_ids
from core.reservoir import rebuild_reservoir
from core.schema import AuditEntry
from core.schema import Example
from core.schema import ReservoirRole
from core.text import normalize
from webapp.cli import main


def test_split_is_per_niche_deterministic_and_grouped(empty_db: Database) -> None:
    settings = empty_db.settings
    with empty_db.session() as session:
        load_demo(session, settings)
        size = ensure_benchmark(session, settings)
        again = ensure_benchmark(session, settings)
        chosen = benchmark_ids(session)
        rows = list(session.scalars(select(Example)))
    assert size == again == len(chosen) > 0
    per_niche = Counter(r.niche for r in rows)
    bench_niche = Counter(r.niche for r in rows if r.id in chosen)
    # Every niche keeps a few benchmark examples, and training still sees every niche.
    for niche, total in per_niche.items():
        assert bench_niche[niche] >= min(settings.benchmark_min_per_niche, total // 2), niche
        assert bench_niche[niche] <= max(total // 2, 1), niche
    # A message is on one side only, unless its niche has too few distinct messages.
    distinct = Counter(n for n, _ in {(r.niche, normalize(r.message)) for r in rows})
    bench_messages = {(r.niche, normalize(r.message)) for r in rows if r.id in chosen}
    train_messages = {(r.niche, normalize(r.message)) for r in rows if r.id not in chosen}
    shared = bench_messages & train_messages
    assert {niche for niche, _ in shared} <= {n for n, c in distinct.items() if c < 6}
    assert len(shared) < 3

    # The same data in a new database gives the same split.
    other = Database(settings.with_overrides(data_dir=settings.data_dir.parent / "other"))
    other.upgrade()
    with other.session() as session:
        load_demo(session, settings)
        ensure_benchmark(session, settings)
        ids = benchmark_ids(session)
        messages = {session.get_one(Example, i).content_hash for i in ids}
    other.dispose()
    assert messages == {r.content_hash for r in rows if r.id in chosen}


def test_anchor_is_human_outside_the_benchmark_and_covers_every_niche(empty_db: Database) -> None:
    settings = empty_db.settings
    with empty_db.session() as session:
        load_demo(session, settings)
        ensure_benchmark(session, settings)
        size = ensure_anchor(session, settings)
        anchor = member_ids(session, ReservoirRole.ANCHOR)
        bench = benchmark_ids(session)
        rows = {r.id: r for r in session.scalars(select(Example))}
    assert size == len(anchor) > 0
    assert not anchor & bench
    assert {rows[i].provenance for i in anchor} == {"human"}
    training = Counter(r.niche for i, r in rows.items() if i not in bench)
    anchored = Counter(rows[i].niche for i in anchor)
    for niche, total in training.items():
        assert anchored[niche] >= min(settings.anchor_min_per_niche, total // 2), niche
    # Rare niches are weighted up: the smallest niche's anchor share beats the largest's.
    smallest, largest = min(training, key=training.get), max(training, key=training.get)  # type: ignore[arg-type]
    assert anchored[smallest] / training[smallest] > anchored[largest] / training[largest]


def test_rebuild_needs_a_reason_is_audited_and_keeps_the_benchmark_unless_asked(
    empty_db: Database,
) -> None:
    settings = empty_db.settings
    with empty_db.session() as session:
        load_demo(session, settings)
        ensure_benchmark(session, settings)
        ensure_anchor(session, settings)
        bench_before = benchmark_ids(session)
    with pytest.raises(ValueError, match="needs a reason"), empty_db.session() as session:
        rebuild_reservoir(session, settings, "admin", "  ", include_benchmark=False)
    with empty_db.session() as session:
        after = rebuild_reservoir(
            session, settings, "admin", "new human data", include_benchmark=False
        )
        assert benchmark_ids(session) == bench_before
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert after["benchmark"] == len(bench_before)
    assert entry is not None
    assert (entry.action, entry.target, entry.reason) == (
        "reservoir.rebuild",
        "anchor",
        "new human data",
    )
    assert entry.details["after"]["anchor"] == after["anchor"]

    result = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(settings.data_dir),
            "reservoir",
            "rebuild",
            "--reason",
            "fresh split",
            "--include-benchmark",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "benchmark" in result.output
    with empty_db.session() as session:
        entry = session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
    assert entry is not None
    assert (entry.target, entry.actor) == ("benchmark+anchor", "cli")
