"""The benchmark split of human examples: set aside once, never trained on."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.provenance import Provenance
from core.schema import Example
from core.schema import ReservoirMember
from core.schema import ReservoirRole
from core.settings import Settings
from core.splits import Candidate
from core.splits import stratified_pick


def benchmark_ids(session: Session) -> set[int]:
    query = select(ReservoirMember.example_id).where(
        ReservoirMember.role == ReservoirRole.BENCHMARK.value
    )
    return set(session.scalars(query))


def ensure_benchmark(session: Session, settings: Settings) -> int:
    """Create the benchmark split if there is none; return its size.

    Per niche, ``benchmark_fraction`` of the human examples (at least
    ``benchmark_min_per_niche``, at most half, so training still sees every niche), grouped
    by message (see core.splits).
    """
    existing = benchmark_ids(session)
    if existing:
        return len(existing)
    rows = session.execute(
        select(Example.id, Example.niche, Example.message, Example.content_hash).where(
            Example.provenance == Provenance.HUMAN.value
        )
    ).all()
    chosen = stratified_pick(
        (Candidate(*row) for row in rows),
        settings.benchmark_fraction,
        settings.benchmark_min_per_niche,
        settings.seed,
        salt="benchmark",
    )
    session.add_all(
        ReservoirMember(example_id=i, role=ReservoirRole.BENCHMARK.value) for i in chosen
    )
    session.flush()
    return len(chosen)
