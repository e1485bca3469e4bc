"""The benchmark split of human examples: set aside once, never trained on."""

from __future__ import annotations

import hashlib
from collections import defaultdict

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.provenance import Provenance
from core.schema import Example
from core.schema import ReservoirMember
from core.schema import ReservoirRole
from core.settings import Settings
from core.text import normalize


def benchmark_ids(session: Session) -> set[int]:
    query = select(ReservoirMember.example_id).where(
        ReservoirMember.role == ReservoirRole.BENCHMARK.value
    )
    return set(session.scalars(query))


def ensure_benchmark(session: Session, settings: Settings) -> int:
    """Create the benchmark split if there is none; return its size.

    Per niche, a share of the human examples (at least ``benchmark_min_per_niche``, at most
    half, so training still sees every niche) is chosen by a seeded hash of the message.
    Examples sharing a message text go to the same side, so the benchmark never asks a
    question that training already answered word for word.
    """
    existing = benchmark_ids(session)
    if existing:
        return len(existing)
    rows = session.execute(
        select(Example.id, Example.message, Example.niche).where(
            Example.provenance == Provenance.HUMAN.value
        )
    ).all()
    by_niche: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for example_id, message, niche in rows:
        by_niche[niche][normalize(message)].append(example_id)
    chosen: list[int] = []
    for niche in sorted(by_niche):
        groups = by_niche[niche]
        total = sum(len(ids) for ids in groups.values())
        target = max(settings.benchmark_min_per_niche, round(settings.benchmark_fraction * total))
        target = min(target, total // 2)
        taken = 0
        for message in sorted(groups, key=lambda m: _rank(settings.seed, niche, m)):
            if taken >= target:
                break
            ids = groups[message]
            if taken + len(ids) > max(target, 1) and taken > 0:
                continue
            chosen.extend(ids)
            taken += len(ids)
    session.add_all(
        ReservoirMember(example_id=i, role=ReservoirRole.BENCHMARK.value) for i in sorted(chosen)
    )
    session.flush()
    return len(chosen)


def _rank(seed: int, niche: str, message: str) -> bytes:
    return hashlib.sha256(f"{seed}:{niche}:{message}".encode()).digest()
