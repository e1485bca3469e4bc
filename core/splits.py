"""Deterministic, niche-stratified selection of examples, grouped by message.

Used to set aside the benchmark (never trained on) and the demo's incoming traffic (replies
hidden from training). Examples sharing a message text land on the same side, so a held-out
message was never answered word for word in training; only a niche with too few distinct
messages to reach its minimum has a message split across both sides.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from core.text import normalize


@dataclass(frozen=True)
class Candidate:
    id: int
    niche: str
    message: str
    # A stable identity (the content hash) so the choice does not depend on database ids.
    key: str


def stratified_pick(
    candidates: Iterable[Candidate], fraction: float, minimum: int, seed: int, salt: str
) -> list[int]:
    """Pick about ``fraction`` of each niche (at least ``minimum``, at most half) by message."""
    by_niche: dict[str, dict[str, list[Candidate]]] = defaultdict(lambda: defaultdict(list))
    for c in candidates:
        by_niche[c.niche][normalize(c.message)].append(c)
    chosen: list[int] = []
    for niche in sorted(by_niche):
        groups = by_niche[niche]
        total = sum(len(g) for g in groups.values())
        cap = total // 2
        target = min(cap, max(minimum, round(fraction * total)))
        taken: list[int] = []
        ordered = sorted(groups, key=lambda m: _rank(seed, salt, niche, m))
        for message in ordered:
            if len(taken) >= target:
                break
            # A group may overshoot the target, never the cap.
            if len(taken) + len(groups[message]) <= cap:
                taken.extend(c.id for c in groups[message])
        if len(taken) < target:
            # Too few distinct messages (one prompt with thirty jokes): split a group rather
            # than leave the niche out.
            picked = set(taken)
            leftovers = sorted(
                (c.key, c.id) for m in ordered for c in groups[m] if c.id not in picked
            )
            taken.extend(i for _, i in leftovers[: target - len(taken)])
        chosen.extend(taken)
    return sorted(chosen)


def _rank(seed: int, salt: str, niche: str, message: str) -> bytes:
    return hashlib.sha256(f"{seed}:{salt}:{niche}:{message}".encode()).digest()
