"""The protected reservoir of human examples.

- the *benchmark*: set aside when the first model is trained and never trained on; every
  evaluation uses it;
- the *anchor*: examples every generation must train on, stratified by niche with a minimum
  per niche, so rare niches keep their voice whatever the mixing does.

Only human examples can enter it (a database trigger refuses anything else). Rebuilding it
is an explicit, audited action.
"""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.actions import Conflict
from core.actions import Invalid
from core.generations import active_generation
from core.provenance import Provenance
from core.schema import Example
from core.schema import ReservoirMember
from core.schema import ReservoirRole
from core.settings import CoreSettings
from core.splits import Candidate
from core.splits import stratified_pick


def member_ids(session: Session, role: ReservoirRole) -> set[int]:
    query = select(ReservoirMember.example_id).where(ReservoirMember.role == role.value)
    return set(session.scalars(query))


def benchmark_ids(session: Session) -> set[int]:
    return member_ids(session, ReservoirRole.BENCHMARK)


def ensure_anchor(session: Session, settings: CoreSettings) -> int:
    """Choose the anchor among the human examples outside the benchmark, if there is none."""
    existing = member_ids(session, ReservoirRole.ANCHOR)
    if existing:
        return len(existing)
    held_out = benchmark_ids(session)
    rows = session.execute(
        select(Example.id, Example.niche, Example.message, Example.content_hash).where(
            Example.provenance == Provenance.HUMAN.value
        )
    ).all()
    chosen = stratified_pick(
        (Candidate(*row) for row in rows if row[0] not in held_out),
        settings.anchor_fraction,
        settings.anchor_min_per_niche,
        settings.seed,
        salt="anchor",
    )
    session.add_all(ReservoirMember(example_id=i, role=ReservoirRole.ANCHOR.value) for i in chosen)
    session.flush()
    return len(chosen)


def rebuild_reservoir(
    session: Session, settings: CoreSettings, actor: str, reason: str, include_benchmark: bool
) -> dict[str, int]:
    """Choose the anchor again from today's human examples (and the benchmark, if asked).

    A new benchmark makes every earlier evaluation incomparable: they are recomputed on the
    next generation, the clean baseline's included.

    Raises Invalid without a reason, and Conflict while a generation is queued or running
    (its mix stage checks that every anchor example is in its training set).
    """
    if not reason.strip():
        raise Invalid("rebuilding the reservoir needs a reason")
    running = active_generation(session)
    if running is not None:
        raise Conflict(
            f"generation {running.number} is {running.status}: rebuild the reservoir when it "
            "has finished (a generation trains on the anchor it started with)"
        )
    roles = [ReservoirRole.ANCHOR] + ([ReservoirRole.BENCHMARK] if include_benchmark else [])
    before = {role.value: len(member_ids(session, role)) for role in roles}
    session.execute(
        delete(ReservoirMember).where(ReservoirMember.role.in_([r.value for r in roles]))
    )
    session.flush()
    ensure_benchmark(session, settings)
    ensure_anchor(session, settings)
    after = {
        role.value: len(member_ids(session, role))
        for role in (ReservoirRole.BENCHMARK, ReservoirRole.ANCHOR)
    }
    audit.record(
        session,
        actor,
        "reservoir.rebuild",
        "benchmark+anchor" if include_benchmark else "anchor",
        reason.strip(),
        {"before": before, "after": after},
    )
    return after


def ensure_benchmark(session: Session, settings: CoreSettings) -> int:
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
