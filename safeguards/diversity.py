"""Diversity of suggestions: what falls first when a model is trained on its own outputs.

All figures are greater-is-better and measured on the suggestions a model gave for the
benchmark messages:

- ``distinct-n``: unique word n-grams / all word n-grams over every suggestion (Li et al.
  2016). n-grams never cross suggestion boundaries.
- ``distinct share``: unique normalised suggestion texts / all suggestions.
- ``entropy``: Shannon entropy (nats) of the distribution of normalised suggestion texts, and
  the same divided by ``log(number of suggestions)``, its largest possible value, so that 1.0
  means every suggestion differs and the figure does not grow with the benchmark's size.
- ``Vendi score`` (Friedman & Dieng 2023) of suggestion embeddings with the cosine kernel:
  exp of the entropy of the eigenvalues of ``K / n``. The non-zero eigenvalues of
  ``X X^T / n`` are those of the d x d ``X^T X / n``, so it costs O(n d^2) instead of
  O(n^3). It is the "effective number of distinct suggestions": between 1 (all the same) and
  ``min(n, d)``.
- ``pairwise distance``: mean cosine distance between the suggestions of one top-k list,
  averaged over lists: do the chips a user sees say different things?
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np

from core.settings import DEFAULT_SEED
from core.text import normalize

# Word characters, keeping contractions whole ("don't" is one token, not "don" and "t").
_TOKEN = re.compile(r"\w+(?:'\w+)*")
DEFAULT_VENDI_SAMPLE = 500


def word_tokens(text: str) -> list[str]:
    """Lowercase word tokens of a text (punctuation dropped).

    Args:
        text: any text.

    Returns:
        The tokens in order, e.g. ``["don't", "go"]`` for ``"Don't go!"``.
    """
    return _TOKEN.findall(normalize(text))


def distinct_ngrams(texts: Sequence[str], n: int) -> tuple[int, int]:
    """Count the unique and all word n-grams over the texts.

    Args:
        texts: the suggestions (each tokenised on its own, so n-grams never span two).
        n: the n-gram length.

    Returns:
        ``(unique n-grams, all n-grams)``.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, not {n}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = word_tokens(text)
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen), total


def distinct_n(texts: Sequence[str], n: int) -> float:
    """Distinct-n: unique n-grams divided by all n-grams, pooled over the texts.

    Args:
        texts: the suggestions (each tokenised on its own).
        n: the n-gram length (1 or 2 in practice).

    Returns:
        A share in [0, 1]; 0.0 when no text has n tokens. Giving the same suggestions twice
        as often halves it: repetition is what it measures.

    Example:
        >>> distinct_n(["yes sure", "sure thing"], 1)
        0.75
    """
    unique, total = distinct_ngrams(texts, n)
    return unique / total if total else 0.0


def distinct_share(texts: Sequence[str]) -> float:
    """Unique normalised texts divided by all texts (0.0 for none).

    Args:
        texts: every suggestion across the benchmark.

    Returns:
        A share in (0, 1]; 1.0 means no suggestion was given twice.
    """
    if not texts:
        return 0.0
    return len({normalize(t) for t in texts}) / len(texts)


def suggestion_entropy(texts: Sequence[str]) -> tuple[float, float]:
    """Shannon entropy of the distribution of normalised suggestion texts.

    Args:
        texts: every suggestion across the benchmark.

    Returns:
        ``(entropy in nats, entropy / log(len(texts)))``; the second is 1.0 exactly when all
        texts differ. Both are 0.0 for fewer than two texts.
    """
    if len(texts) < 2:
        return 0.0, 0.0
    counts = np.array(list(Counter(normalize(t) for t in texts).values()), dtype=np.float64)
    p = counts / counts.sum()
    entropy = float(-(p * np.log(p)).sum())
    # Rounding can leave -0.0 or a hair above the maximum; keep the figure in range.
    entropy = max(entropy, 0.0)
    return entropy, min(entropy / math.log(len(texts)), 1.0)


def vendi_score(
    embeddings: np.ndarray, sample_size: int | None = DEFAULT_VENDI_SAMPLE, seed: int = DEFAULT_SEED
) -> float:
    """Vendi score with the cosine kernel, through the d x d covariance.

    Args:
        embeddings: (n, d) vectors; rows are L2-normalised here, so any scale is fine.
        sample_size: score a seeded subsample of this many rows when there are more, so two
            models are compared at the same size (the score grows with n); None for all.
        seed: the subsample's seed.

    Returns:
        ``exp(-sum(l * log l))`` over the eigenvalues ``l`` of ``X^T X / n``: 1.0 for n
        identical rows, n for n orthogonal rows; 0.0 for no rows.

    Example:
        >>> round(vendi_score(np.eye(3)), 6)
        3.0
    """
    x = np.asarray(embeddings)
    if x.ndim != 2:
        raise ValueError(f"embeddings must be 2-D, not shape {x.shape}")
    if len(x) == 0:
        return 0.0
    if sample_size is not None and len(x) > sample_size:
        rows = np.sort(np.random.default_rng(seed).choice(len(x), sample_size, replace=False))
        x = x[rows]
    # float64: the eigenvalues of a nearly rank-one matrix are tiny and float32 turns them
    # into noise; the d x d product is cheap whatever n is.
    x = x.astype(np.float64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    if np.any(norms == 0):
        raise ValueError("embeddings contain a zero vector; the cosine kernel is undefined")
    x /= norms
    covariance = (x.T @ x) / len(x)
    eigenvalues = np.linalg.eigvalsh(covariance)
    # Round-off leaves tiny negative eigenvalues where the true ones are zero (0 log 0 = 0).
    eigenvalues = eigenvalues[eigenvalues > 0]
    return math.exp(float(-(eigenvalues * np.log(eigenvalues)).sum()))


def mean_pairwise_distance(lists: Sequence[np.ndarray]) -> float:
    """Mean cosine distance (1 - cosine) between the items of each list, averaged over lists.

    Args:
        lists: one (k, d) array per top-k list; lists of fewer than two items carry no
            pairs and are skipped.

    Returns:
        The average over lists of each list's mean distance over its pairs; 0.0 when no list
        has a pair.
    """
    per_list: list[float] = []
    for vectors in lists:
        v = np.asarray(vectors, dtype=np.float64)
        if len(v) < 2:
            continue
        v = v / np.linalg.norm(v, axis=1, keepdims=True)
        upper = np.triu_indices(len(v), k=1)
        per_list.append(float(np.mean(1.0 - (v @ v.T)[upper])))
    return float(np.mean(per_list)) if per_list else 0.0


def split_rows(flat: np.ndarray, lengths: Sequence[int]) -> list[np.ndarray]:
    """Cut a stacked array back into consecutive blocks of the given lengths."""
    if sum(lengths) != len(flat):
        raise ValueError(f"lengths add up to {sum(lengths)}, but there are {len(flat)} rows")
    bounds = np.cumsum([0, *lengths])
    return [flat[bounds[i] : bounds[i + 1]] for i in range(len(lengths))]


def diversity_figures(
    suggestions: Sequence[Sequence[str]],
    embeddings: np.ndarray,
    vendi_sample_size: int | None = DEFAULT_VENDI_SAMPLE,
    seed: int = DEFAULT_SEED,
) -> dict[str, float]:
    """Every diversity figure of one model's suggestions.

    Args:
        suggestions: the top-k texts of each benchmark message.
        embeddings: one row per suggestion, in the order of ``suggestions`` flattened.
        vendi_sample_size: see :func:`vendi_score`.
        seed: the Vendi subsample's seed.

    Returns:
        ``distinct_1``, ``distinct_2``, ``distinct_share``, ``entropy``, ``entropy_norm``,
        ``vendi`` and ``pairwise_distance``.
    """
    flat = [text for row in suggestions for text in row]
    entropy, entropy_norm = suggestion_entropy(flat)
    lists = split_rows(embeddings, [len(row) for row in suggestions])
    return {
        "distinct_1": distinct_n(flat, 1),
        "distinct_2": distinct_n(flat, 2),
        "distinct_share": distinct_share(flat),
        "entropy": entropy,
        "entropy_norm": entropy_norm,
        "vendi": vendi_score(embeddings, vendi_sample_size, seed),
        "pairwise_distance": mean_pairwise_distance(lists),
    }
