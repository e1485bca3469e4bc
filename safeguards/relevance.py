"""Relevance of ranked suggestions against gold replies: accuracy@k, MRR@k and closeness.

A suggestion matches the gold reply when their normalised texts are identical or their
embeddings' cosine is at least the threshold (0.8 by default). Each benchmark message has
one gold reply, so the share of messages with a match in the top ``k`` is a hit rate:
``accuracy@k`` (safeguards.metrics says why not recall@k).

The functions here take embeddings (or cosines computed from them) and return numbers; the
encoding is done once, by the caller (:func:`encode_ranked` and one ``encode`` of the gold
replies), so that each text is encoded once per evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from core.text import normalize
from safeguards.diversity import split_rows
from safeguards.protocols import TextEncoder


def encode_ranked(ranked: Sequence[Sequence[str]], encoder: TextEncoder) -> list[np.ndarray]:
    """Every suggestion encoded in one call, cut back into one block per message.

    Args:
        ranked: each message's suggestions, best first.
        encoder: returns L2-normalised rows.

    Returns:
        Per message, a ``(len(ranked[i]), dim)`` array.
    """
    flat = [text for row in ranked for text in row]
    vectors = encoder.encode(flat) if flat else np.zeros((0, encoder.dim), np.float32)
    return split_rows(vectors, [len(row) for row in ranked])


def gold_cosines(
    ranked_vectors: Sequence[np.ndarray], gold_vectors: np.ndarray
) -> list[np.ndarray]:
    """Per message, the cosine of each of its suggestions with its gold reply.

    Args:
        ranked_vectors: per message, ``(n_i, dim)`` unit rows, best suggestion first.
        gold_vectors: ``(messages, dim)`` unit rows, one gold reply per message.

    Returns:
        Per message, an ``(n_i,)`` array.
    """
    if len(ranked_vectors) != len(gold_vectors):
        raise ValueError(f"{len(ranked_vectors)} ranked lists but {len(gold_vectors)} gold replies")
    return [vectors @ gold_vectors[i] for i, vectors in enumerate(ranked_vectors)]


def first_match_ranks(
    ranked: Sequence[Sequence[str]],
    gold: Sequence[str],
    cosines: Sequence[np.ndarray],
    threshold: float,
) -> np.ndarray:
    """1-based rank of the first suggestion matching each gold reply; 0 where none does.

    Args:
        ranked: each message's suggestion texts, best first.
        gold: each message's gold reply.
        cosines: from :func:`gold_cosines`, aligned with ``ranked``.
        threshold: the cosine at which a suggestion matches.

    Returns:
        An int64 array, one rank per message.
    """
    ranks = np.zeros(len(gold), dtype=np.int64)
    for i, (suggestions, target) in enumerate(zip(ranked, gold, strict=True)):
        key = normalize(target)
        for position, text in enumerate(suggestions):
            if normalize(text) == key or cosines[i][position] >= threshold:
                ranks[i] = position + 1
                break
    return ranks


def best_similarity(
    ranked_vectors: Sequence[np.ndarray], gold_vectors: np.ndarray, k: int
) -> np.ndarray:
    """Per gold reply, the highest cosine between it and the first ``k`` suggestions.

    A continuous companion to accuracy@k: on data where few gold replies have an exact or
    near match anywhere in the bank (the demo corpus: under a fifth), accuracy moves in
    steps of one example, while this moves with every suggestion that gets closer or further.

    Args:
        ranked_vectors: per message, ``(n_i, dim)`` unit rows, best suggestion first (as
            from :func:`encode_ranked`).
        gold_vectors: ``(messages, dim)`` unit rows, one gold reply per message.
        k: how many suggestions are shown.

    Returns:
        A float64 array, one value per message; 0.0 for a message without suggestions.
    """
    # The first k rows' own product, not a slice of gold_cosines: a float32 product's
    # rounding depends on the block's shape, and evaluations stored before are compared
    # with these values.
    return np.array(
        [
            float((vectors[:k] @ gold_vectors[i]).max()) if len(vectors) else 0.0
            for i, vectors in enumerate(ranked_vectors)
        ],
        np.float64,
    )


def relevance_metrics(
    ranks: np.ndarray, ks: Sequence[int] = (1, 3), depth: int = 10
) -> dict[str, float]:
    """``accuracy@k`` for each k and ``mrr@depth`` from first-match ranks (0 = no match).

    Args:
        ranks: 1-based first-match rank per benchmark message.
        ks: the accuracy cut-offs.
        depth: the MRR's cut-off: a first match below it counts 0 (the evaluation asks for
            this many suggestions, so none is below it there).

    Returns:
        By metric name; every value 0.0 for no ranks.
    """
    names = [f"accuracy@{k}" for k in ks]
    if len(ranks) == 0:
        return {**dict.fromkeys(names, 0.0), f"mrr@{depth}": 0.0}
    hit = ranks > 0
    metrics = {name: float(np.mean(hit & (ranks <= k))) for name, k in zip(names, ks, strict=True)}
    reciprocal = np.where(hit & (ranks <= depth), 1.0 / np.maximum(ranks, 1), 0.0)
    metrics[f"mrr@{depth}"] = float(reciprocal.mean())
    return metrics
