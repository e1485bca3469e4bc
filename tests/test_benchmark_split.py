from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from core.db import Database
from core.ingest import load_demo
from core.reservoir import benchmark_ids
from core.reservoir import ensure_benchmark
from core.schema import Example
from core.text import normalize


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
