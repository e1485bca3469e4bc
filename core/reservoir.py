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
    question that training already answered word for word; only a niche with too few
    distinct messages to reach its minimum has a message split across both sides.
    """
    existing = benchmark_ids(session)
    if existing:
        return len(existing)
    rows = session.execute(
        select(Example.id, Example.message, Example.niche, Example.content_hash).where(
            Example.provenance == Provenance.HUMAN.value
        )
    ).all()
    by_niche: dict[str, dict[str, list[tuple[str, int]]]] = defaultdict(lambda: defaultdict(list))
    for example_id, message, niche, content_hash in rows:
        by_niche[niche][normalize(message)].append((content_hash, example_id))
    chosen: list[int] = []
    for niche in sorted(by_niche):
        groups = by_niche[niche]
        total = sum(len(ids) for ids in groups.values())
        cap = total // 2
        wanted = max(settings.benchmark_min_per_niche, round(settings.benchmark_fraction * total))
        target = min(cap, wanted)
        taken: list[int] = []
        ordered = sorted(groups, key=lambda m: _rank(settings.seed, niche, m))
        for message in ordered:
            if len(taken) >= target:
                break
            # A group may overshoot the target, never the cap.
            if len(taken) + len(groups[message]) <= cap:
                taken.extend(i for _, i in groups[message])
        if len(taken) < target:
            # Too few distinct messages (one prompt with thirty jokes): split a group rather
            # than leave the niche without a benchmark.
            leftovers = sorted(pair for m in ordered for pair in groups[m] if pair[1] not in taken)
            taken.extend(i for _, i in leftovers[: target - len(taken)])
        chosen.extend(taken)
    session.add_all(
        ReservoirMember(example_id=i, role=ReservoirRole.BENCHMARK.value) for i in sorted(chosen)
    )
    session.flush()
    return len(chosen)


def _rank(seed: int, niche: str, message: str) -> bytes:
    return hashlib.sha256(f"{seed}:{niche}:{message}".encode()).digest()
