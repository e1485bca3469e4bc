"""Which intent a reply found in the data carries: label propagation from the catalogue.

The catalogue (models.catalogue) names a few hundred intents, each with a few canonical
replies; the data adds replies people write again and again ("thx so much", "omg congrats").
Such a *mined* reply joins an intent by propagation from the catalogue over the reply graph,
as Smart Reply builds its semantic intent clusters (Kannan et al., KDD 2016, section 4: a few
hand-labelled seed replies per intent, labels spread over a graph of replies whose edges are
their similarity, by the Expander semi-supervised graph learning). This is a small version of
that method, measured in docs/benchmarks.md ("Intent propagation"):

- **Graph**: every reply (catalogue seeds and mined replies) is joined to its
  ``neighbours`` nearest replies by encoder cosine, keeping the edges of cosine at least
  ``edge_floor``, each weighing ``exp((cosine - 1) / temperature)``; edges are made
  symmetric.
- **Spreading**: the seeds are clamped to their intent; a mined reply's label mass for an
  intent is ``damping`` times the weighted mean of its neighbours' mass, where the mean's
  denominator also holds an *abstain* weight (the "none of these" label of Expander's
  objective, Ravi and Diao 2016), as heavy as an edge of cosine ``abstain``, so a reply
  whose nearest edges are weaker than that keeps little mass. Repeated
  ``iterations`` times (mass reaches replies a few hops from a seed, each hop damped).
- **Joining**: a mined reply joins the intent of its highest mass when that mass is at least
  ``threshold``; otherwise it joins none and is left to an unnamed cluster for a reviewer to
  name (models.response_set).

Every default is the one chosen on the labelled check ``tests/data/intent_check.tsv`` by
``bench/intent_propagation.py`` (docs/benchmarks.md gives precision and coverage at each
threshold, and beside them the plain nearest-seed rule the propagation is compared with).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class PropagationConfig:
    """How labels spread from the catalogue's replies to the mined ones.

    Attributes:
        neighbours: edges per reply to its nearest replies (before they are made symmetric).
        edge_floor: the smallest encoder cosine that is an edge.
        temperature: an edge of cosine c weighs exp((c - 1) / temperature): the nearest
            replies count far more than the merely related (at 0.05, an edge 0.05 nearer
            weighs e times more).
        damping: the share of a neighbour's mass that passes over one edge, in (0, 1].
        abstain: the "no intent" label weighs as an edge of this cosine in every mean.
        iterations: rounds of spreading.
        threshold: the mass at which a mined reply joins its best intent, in [0, 1].
    """

    neighbours: int = 10
    edge_floor: float = 0.5
    temperature: float = 0.05
    damping: float = 0.9
    abstain: float = 0.6
    iterations: int = 10
    threshold: float = 0.5


@dataclass(frozen=True)
class Propagated:
    """What propagation decided for each mined reply.

    Attributes:
        labels: (m,) int64: the intent index (into the seeds' label space) each mined reply
            joins, -1 for none.
        mass: (m,) float32: each mined reply's highest label mass, in [0, 1].
        best: (m,) int64: the intent of that highest mass, whether or not it was joined
            (-1 when a reply received no mass at all).
    """

    labels: np.ndarray
    mass: np.ndarray
    best: np.ndarray


def propagate(
    seeds: np.ndarray,
    seed_labels: np.ndarray,
    labels: int,
    mined: np.ndarray,
    config: PropagationConfig = PropagationConfig(),
) -> Propagated:
    """Spread the seeds' intents over the reply graph to the mined replies.

    Args:
        seeds: (s, d) float32, unit rows: the catalogue replies' embeddings.
        seed_labels: (s,) int64: each seed's intent, in [0, labels).
        labels: the number of intents.
        mined: (m, d) float32, unit rows: the mined replies' embeddings.
        config: the graph and the threshold (module docstring).

    Returns:
        Each mined reply's intent (or -1), its mass and its best intent.

    Raises:
        ValueError: embeddings of different widths, or a seed label out of range.
    """
    m = len(mined)
    empty = Propagated(np.full(m, -1, np.int64), np.zeros(m, np.float32), np.full(m, -1, np.int64))
    if m == 0 or len(seeds) == 0 or labels == 0:
        return empty
    if seeds.shape[1] != mined.shape[1]:
        raise ValueError(f"seeds are {seeds.shape[1]}-d, mined replies {mined.shape[1]}-d")
    seed_labels = np.asarray(seed_labels, dtype=np.int64)
    if seed_labels.min() < 0 or seed_labels.max() >= labels:
        raise ValueError(f"seed labels must be in [0, {labels})")
    s = len(seeds)
    nodes = np.ascontiguousarray(np.vstack([seeds, mined]), dtype=np.float32)
    n = len(nodes)
    index = faiss.IndexFlatIP(nodes.shape[1])
    index.add(nodes)
    k = min(config.neighbours + 1, n)
    sims, found = index.search(nodes, k)
    rows = np.repeat(np.arange(n), k)
    cols = found.reshape(-1)
    weights = sims.reshape(-1)
    keep = (cols >= 0) & (cols != rows) & (weights >= config.edge_floor)
    rows, cols, weights = rows[keep], cols[keep], weights[keep]
    # Symmetric: an edge either way is an edge both ways (the larger weight where both exist).
    edges: dict[tuple[int, int], float] = {}
    for a, b, w in zip(rows.tolist(), cols.tolist(), weights.tolist(), strict=True):
        for key in ((a, b), (b, a)):
            if edges.get(key, -1.0) < w:
                edges[key] = w
    # Only edges into mined replies carry mass (the seeds are clamped).
    into = [(a, b, w) for (a, b), w in edges.items() if a >= s]
    mass = np.zeros((n, labels), dtype=np.float64)
    mass[np.arange(s), seed_labels] = 1.0
    if not into:
        return empty
    target = np.asarray([a for a, _, _ in into], dtype=np.int64)
    source = np.asarray([b for _, b, _ in into], dtype=np.int64)
    cosine = np.asarray([w for _, _, w in into], dtype=np.float64)
    weight = np.exp((cosine - 1.0) / config.temperature)
    degree = np.zeros(n, dtype=np.float64)
    np.add.at(degree, target, weight)
    abstain = float(np.exp((config.abstain - 1.0) / config.temperature))
    denominator = (degree[s:] + abstain)[:, None]
    for _ in range(config.iterations):
        spread = np.zeros((n, labels), dtype=np.float64)
        np.add.at(spread, target, weight[:, None] * mass[source])
        mass[s:] = config.damping * spread[s:] / denominator
    mined_mass = mass[s:]
    best = mined_mass.argmax(axis=1).astype(np.int64)
    top = mined_mass[np.arange(m), best]
    best[top <= 0] = -1
    joined = np.where(top >= config.threshold, best, -1).astype(np.int64)
    return Propagated(joined, top.astype(np.float32), best)


def nearest_seed(
    seeds: np.ndarray, seed_labels: np.ndarray, mined: np.ndarray, threshold: float
) -> Propagated:
    """The plain rule propagation is measured against: each mined reply joins the intent of
    its nearest seed when their cosine is at least ``threshold``.

    Args:
        seeds: (s, d) float32 unit rows; seed_labels: (s,) int64; mined: (m, d) float32.

    Returns:
        As :func:`propagate`, with the cosine as the mass.
    """
    m = len(mined)
    if m == 0 or len(seeds) == 0:
        return Propagated(
            np.full(m, -1, np.int64), np.zeros(m, np.float32), np.full(m, -1, np.int64)
        )
    sims = mined @ seeds.T
    nearest = sims.argmax(axis=1)
    top = sims[np.arange(m), nearest].astype(np.float32)
    best = np.asarray(seed_labels, dtype=np.int64)[nearest]
    return Propagated(np.where(top >= threshold, best, -1), top, best)


def unnamed_name(text_key: str) -> str:
    """The name of the unnamed cluster led by the reply whose surface key is ``text_key``:
    ``unnamed-`` and 8 hex digits of its hash, the same in every model that has that leader
    (so a reviewer's work on a cluster can follow it from one generation to the next)."""
    return "unnamed-" + hashlib.sha256(text_key.encode()).hexdigest()[:8]


def is_unnamed(intent: str) -> bool:
    """Whether ``intent`` is an unnamed cluster rather than a catalogue intent."""
    return intent.startswith("unnamed-")
