"""Niche coverage: relevance per niche, and for the rarest niches pooled.

Rare niches are where collapse shows first (each generation under-samples the tails of the
one before), while the overall average, dominated by common niches, stays green. So the
tail is reported on its own: recall@k and MRR over the benchmark examples of the tail niches
pooled together (one rare niche alone has too few benchmark examples to say much).

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

from safeguards.relevance import relevance_figures

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

    ``per_niche[niche]`` holds ``recall@k``, ``mrr`` and ``count`` (benchmark examples);
    evaluate_model adds ``similarity@k``.
    """

    tail: list[str]
    head_figures: dict[str, float]
    tail_figures: dict[str, float]
    head_count: int
    tail_count: int
    per_niche: dict[str, dict[str, float]]


def niche_relevance(
    ranks: np.ndarray, niches: Sequence[str], ks: Sequence[int] = (1, 3)
) -> dict[str, dict[str, float]]:
    """recall@k and MRR for each niche's benchmark examples.

    Args:
        ranks: 1-based first-match rank per benchmark example (0 = no match), as from
            :func:`safeguards.relevance.first_match_ranks`.
        niches: each example's niche.
        ks: the recall cut-offs.

    Returns:
        By niche: the relevance figures plus ``count``.
    """
    ranks = np.asarray(ranks)
    if len(ranks) != len(niches):
        raise ValueError(f"{len(ranks)} ranks but {len(niches)} niches")
    labels = np.asarray(niches, dtype=object)
    out: dict[str, dict[str, float]] = {}
    for niche in sorted(set(niches)):
        mask = labels == niche
        out[niche] = {**relevance_figures(ranks[mask], ks), "count": float(mask.sum())}
    return out


def coverage(
    ranks: np.ndarray,
    niches: Sequence[str],
    niche_counts: Mapping[str, int],
    ks: Sequence[int] = (1, 3),
    tail_share: float = DEFAULT_TAIL_SHARE,
) -> CoverageReport:
    """Head and tail relevance, pooled, and relevance per niche.

    Args:
        ranks: first-match rank per benchmark example (0 = no match).
        niches: each benchmark example's niche.
        niche_counts: human examples per niche, which decides what is rare.
        ks: the recall cut-offs.
        tail_share: see :func:`tail_niches`; chosen among the niches in the benchmark.

    Returns:
        A :class:`CoverageReport`. With no benchmark examples in a group its figures are 0.
    """
    ranks = np.asarray(ranks)
    tail = tail_niches(niche_counts, tail_share, among=set(niches))
    tail_set = set(tail)
    in_tail = np.array([niche in tail_set for niche in niches], dtype=bool)
    return CoverageReport(
        tail=tail,
        head_figures=relevance_figures(ranks[~in_tail], ks),
        tail_figures=relevance_figures(ranks[in_tail], ks),
        head_count=int((~in_tail).sum()),
        tail_count=int(in_tail.sum()),
        per_niche=niche_relevance(ranks, niches, ks),
    )
