"""Relevance of ranked suggestions against gold replies: recall@k and MRR.

A suggestion matches the gold reply when their normalised texts are identical or their
embeddings' cosine is at least the threshold (0.8 by default).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.text import normalize
from safeguards.evaluation import TextEncoder


def first_match_ranks(
    ranked: Sequence[Sequence[str]], gold: Sequence[str], encoder: TextEncoder, threshold: float
) -> np.ndarray:
    """1-based rank of the first suggestion matching each gold reply; 0 where none does."""
    flat = [text for suggestions in ranked for text in suggestions]
    suggestion_vecs = encoder.encode(flat) if flat else np.zeros((0, encoder.dim), np.float32)
    gold_vecs = encoder.encode(list(gold))
    ranks = np.zeros(len(gold), dtype=np.int64)
    offset = 0
    for i, (suggestions, target) in enumerate(zip(ranked, gold, strict=True)):
        vecs = suggestion_vecs[offset : offset + len(suggestions)]
        offset += len(suggestions)
        sims = vecs @ gold_vecs[i]
        key = normalize(target)
        for position, text in enumerate(suggestions):
            if normalize(text) == key or sims[position] >= threshold:
                ranks[i] = position + 1
                break
    return ranks


def best_similarity(
    ranked: Sequence[Sequence[str]], gold: Sequence[str], encoder: TextEncoder, k: int
) -> np.ndarray:
    """Per gold reply, the highest cosine between it and the first ``k`` suggestions.

    A continuous companion to recall@k: on data where few gold replies have an exact or
    near match anywhere in the bank (the demo corpus: under a fifth), recall moves in steps
    of one example, while this moves with every suggestion that gets closer or further.
    """
    shown = [list(row[:k]) for row in ranked]
    flat = [text for row in shown for text in row]
    if not flat:
        return np.zeros(len(gold), dtype=np.float64)
    vectors = encoder.encode(flat)
    gold_vectors = encoder.encode(list(gold))
    out = np.zeros(len(gold), dtype=np.float64)
    offset = 0
    for i, row in enumerate(shown):
        if row:
            out[i] = float((vectors[offset : offset + len(row)] @ gold_vectors[i]).max())
        offset += len(row)
    return out


def relevance_figures(ranks: np.ndarray, ks: Sequence[int] = (1, 3)) -> dict[str, float]:
    """recall@k for each k and MRR from first-match ranks (0 = no match)."""
    if len(ranks) == 0:
        return {**{f"recall@{k}": 0.0 for k in ks}, "mrr": 0.0}
    hit = ranks > 0
    figures = {f"recall@{k}": float(np.mean(hit & (ranks <= k))) for k in ks}
    reciprocal = np.where(hit, 1.0 / np.maximum(ranks, 1), 0.0)
    figures["mrr"] = float(reciprocal.mean())
    return figures
