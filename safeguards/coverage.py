"""Niche coverage: relevance per niche, and for the rarest niches pooled.

Rare niches are where collapse shows first (each generation under-samples the tails of the
one before), while the overall average, dominated by common niches, stays green. So the
tail is reported on its own: accuracy@k and MRR@k over the benchmark examples of the tail
niches pooled together (one rare niche alone has too few benchmark examples to say much).

Tail niches are the rarest by count of human examples: the rarest ``share`` of the niches
(a fifth by default, at least one). Equal counts are broken by name, so the choice is stable.
Head niches are all the others, so head and tail split the benchmark between them.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from safeguards.relevance import relevance_metrics

DEFAULT_TAIL_SHARE = 0.2


def tail_niches(
    niche_counts: Mapping[str, int],
    share: float = DEFAULT_TAIL_SHARE,
    among: Collection[str] | None = None,
) -> list[str]:
    """The rarest niches by count of human examples.

    Args:
        niche_counts: human examples per niche (a niche missing here counts 0).
        share: the fraction of niches that forms the tail (rounded down, at least one).
        among: the niches to choose from, e.g. those present in the benchmark, so every tail
            niche is measured; all niches in ``niche_counts`` when None.

    Returns:
        The tail niches, rarest first.

    Example:
        >>> tail_niches({"a": 100, "b": 3, "c": 50, "d": 7, "e": 900})
        ['b']
    """
    if not 0.0 < share <= 1.0:
        raise ValueError(f"tail share must be in (0, 1], not {share}")
    pool = sorted(set(niche_counts) if among is None else set(among))
    if not pool:
        return []
    size = max(1, math.floor(share * len(pool)))
    return sorted(pool, key=lambda niche: (niche_counts.get(niche, 0), niche))[:size]


@dataclass(frozen=True)
class CoverageReport:
    """Relevance per niche and pooled over head and tail niches.

    ``per_niche[niche]`` holds ``accuracy@k``, ``mrr@depth`` and ``count`` (benchmark
    examples); the evaluator (safeguards.evaluator) adds ``similarity@k``.
    """

    tail: list[str]
    head_metrics: dict[str, float]
    tail_metrics: dict[str, float]
    head_count: int
    tail_count: int
    per_niche: dict[str, dict[str, float]]


def niche_relevance(
    ranks: np.ndarray, niches: Sequence[str], ks: Sequence[int] = (1, 3), depth: int = 10
) -> dict[str, dict[str, float]]:
    """accuracy@k and MRR@depth for each niche's benchmark examples.

    Args:
        ranks: 1-based first-match rank per benchmark example (0 = no match), as from
            :func:`safeguards.relevance.first_match_ranks`.
        niches: each example's niche.
        ks: the accuracy cut-offs.
        depth: the MRR's cut-off (:func:`safeguards.relevance.relevance_metrics`).

    Returns:
        By niche: the relevance metrics plus ``count``.
    """
    ranks = np.asarray(ranks)
    if len(ranks) != len(niches):
        raise ValueError(f"{len(ranks)} ranks but {len(niches)} niches")
    labels = np.asarray(niches, dtype=object)
    out: dict[str, dict[str, float]] = {}
    for niche in sorted(set(niches)):
        mask = labels == niche
        out[niche] = {**relevance_metrics(ranks[mask], ks, depth), "count": float(mask.sum())}
    return out


def coverage(
    ranks: np.ndarray,
    niches: Sequence[str],
    tail: Sequence[str],
    ks: Sequence[int] = (1, 3),
    depth: int = 10,
) -> CoverageReport:
    """Head and tail relevance, pooled, and relevance per niche.

    Args:
        ranks: first-match rank per benchmark example (0 = no match).
        niches: each benchmark example's niche.
        tail: the tail niches, from :func:`tail_niches` chosen among the benchmark's niches
            (the evaluator chooses them once and records them).
        ks: the accuracy cut-offs.
        depth: the MRR's cut-off.

    Returns:
        A :class:`CoverageReport`. With no benchmark examples in a group its metrics are 0.
    """
    ranks = np.asarray(ranks)
    tail_set = set(tail)
    in_tail = np.array([niche in tail_set for niche in niches], dtype=bool)
    return CoverageReport(
        tail=list(tail),
        head_metrics=relevance_metrics(ranks[~in_tail], ks, depth),
        tail_metrics=relevance_metrics(ranks[in_tail], ks, depth),
        head_count=int((~in_tail).sum()),
        tail_count=int(in_tail.sum()),
        per_niche=niche_relevance(ranks, niches, ks, depth),
    )
