"""Remove duplicate synthetic examples: exact first, then near-duplicates by embedding (FAISS).

A synthetic example is removed when it duplicates something already stored (human or
synthetic, from any earlier generation) or a synthetic example earlier in the list that was
kept. Stored examples are never removed: deduplication only ever decides what new synthetic
data may enter.

1. **Exact**: the hash of the normalised (message, reply) pair (:func:`core.text.pair_hash`,
   the same as ``Example.content_hash``), so the database's hashes can be used as they are.
2. **Semantic**: the *pair embedding* of an example is the L2-normalised mean of its
   message's and its reply's normalised embeddings, ``(m + r) / |m + r|``. It keeps the
   encoder's dimension (one index row per example, half the memory of concatenating), and
   its cosine is high only when message and reply are both close (a shared reply to an
   unrelated message gives about 0.6); one blind spot: a pair and its mirror image (message
   and reply swapped) embed identically, and count as duplicates. An example is removed
   when its nearest neighbour among the stored examples and the earlier *kept* synthetic
   examples has a cosine at or above the threshold (0.95 by default).

   Comparing with the earlier *kept* examples only (greedy) keeps a set in which no two
   examples are that alike, and never drops C for resembling a B that was itself dropped as
   a copy of A while C is not close to A.

The synthetic vectors are processed in chunks: each chunk is searched against an index of
everything stored and kept so far, then against itself (a chunk x chunk product), then its
kept rows join the index. Memory is the index plus one chunk's square, whatever the total.
Up to ``exact_limit`` vectors the index is exact (``IndexFlatIP``); above it an
``IndexIVFFlat`` (inner product, ``nprobe`` lists searched), trained on a seeded sample.

Deduplication is idempotent: run again on its own output (with the same stored examples) it
removes nothing. Decisions close to the threshold are recomputed in float64, so they do not
depend on how the rows fell into chunks. With the approximate IVF index this holds up to the
index's recall (``bench/dedup.py`` measures it).

Example:
    >>> result = deduplicate(synthetic, stored, encoder)  # doctest: +SKIP
    >>> result.counts  # doctest: +SKIP
    {'exact': 12, 'semantic': 40}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Generic
from typing import Literal
from typing import Protocol
from typing import TypeVar

import numpy as np

from core.settings import DEFAULT_SEED
from core.text import pair_hash
from safeguards.evaluation import TextEncoder

if TYPE_CHECKING:
    import faiss

DEFAULT_THRESHOLD = 0.95
# Cosines this close to the threshold are recomputed in float64 before deciding.
_RECHECK_MARGIN = 1e-4


class Pair(Protocol):
    @property
    def message(self) -> str: ...

    @property
    def reply(self) -> str: ...


class StoredPair(Protocol):
    @property
    def id(self) -> int: ...

    @property
    def message(self) -> str: ...

    @property
    def reply(self) -> str: ...


T = TypeVar("T", bound=Pair)


@dataclass(frozen=True)
class DedupConfig:
    """How near-duplicates are found.

    Args:
        threshold: pair-embedding cosine at or above which an example is a duplicate.
        exact_limit: up to this many vectors (stored + synthetic) search is exact.
        nlist: IVF lists; None for about the square root of the number of vectors.
        nprobe: IVF lists searched per query (recall against speed). At 8, ``bench/dedup.py``
            finds every duplicate exact search finds on 100,000 vectors (4 misses 1 in 4,600).
        train_size: vectors the IVF quantizer is trained on; None for 64 per list.
        chunk_size: synthetic rows handled at once (memory: a chunk_size^2 float32 matrix;
            time: n x chunk_size products, so larger is not faster).
        seed: for the training sample and the k-means.
    """

    threshold: float = DEFAULT_THRESHOLD
    exact_limit: int = 50_000
    nlist: int | None = None
    nprobe: int = 8
    train_size: int | None = None
    chunk_size: int = 2048
    seed: int = DEFAULT_SEED

    def __post_init__(self) -> None:
        if not -1.0 <= self.threshold <= 1.0:
            raise ValueError(f"threshold is a cosine in [-1, 1], not {self.threshold}")
        if self.chunk_size < 1 or self.nprobe < 1:
            raise ValueError("chunk_size and nprobe must be positive")


@dataclass(frozen=True)
class Duplicate:
    """One removed synthetic example.

    Args:
        index: its position in the synthetic list given to the function.
        stage: ``exact`` (same normalised pair) or ``semantic`` (embedding cosine).
        against: whether it duplicated an earlier ``synthetic`` example or a ``stored`` one.
        duplicate_of: that example's position in the synthetic list, or the stored id.
        similarity: the cosine of the two pair embeddings (1.0 for exact duplicates).
    """

    index: int
    stage: Literal["exact", "semantic"]
    against: Literal["synthetic", "stored"]
    duplicate_of: int
    similarity: float

    def as_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "stage": self.stage,
            "against": self.against,
            "duplicate_of": self.duplicate_of,
            "similarity": round(self.similarity, 6),
        }


@dataclass
class DedupResult(Generic[T]):
    """The kept synthetic examples (input order) and one record per removed example."""

    kept: list[T]
    kept_indices: list[int]
    removed: list[Duplicate] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "exact": sum(d.stage == "exact" for d in self.removed),
            "semantic": sum(d.stage == "semantic" for d in self.removed),
        }


def pair_embeddings(messages: np.ndarray, replies: np.ndarray) -> np.ndarray:
    """The embedding of (message, reply) pairs: the normalised mean of the two.

    Args:
        messages: (n, d) normalised message embeddings.
        replies: (n, d) normalised reply embeddings, same order.

    Returns:
        (n, d) float32 unit rows ``(m + r) / |m + r|``; where ``m = -r`` (no direction) the
        message embedding stands in.
    """
    if messages.shape != replies.shape:
        raise ValueError(f"shapes differ: {messages.shape} and {replies.shape}")
    total = messages.astype(np.float32) + replies.astype(np.float32)
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    degenerate = norms[:, 0] < 1e-6
    total[degenerate] = messages[degenerate]
    norms[degenerate] = 1.0
    return np.ascontiguousarray(total / norms, dtype=np.float32)


def encode_pairs(
    encoder: TextEncoder, examples: Sequence[Pair], chunk_size: int = 4096
) -> np.ndarray:
    """Pair embeddings of examples, encoded chunk by chunk.

    Args:
        encoder: the base encoder.
        examples: anything with ``message`` and ``reply``.
        chunk_size: examples encoded at once.

    Returns:
        (n, d) float32, see :func:`pair_embeddings`.
    """
    out = np.zeros((len(examples), encoder.dim), dtype=np.float32)
    for start in range(0, len(examples), chunk_size):
        chunk = examples[start : start + chunk_size]
        messages = encoder.encode([e.message for e in chunk])
        replies = encoder.encode([e.reply for e in chunk])
        out[start : start + len(chunk)] = pair_embeddings(messages, replies)
    return out


def stored_hashes(stored: Sequence[StoredPair]) -> dict[str, int]:
    """Pair hash -> id of the first stored example with it (``Example.content_hash`` is the
    same hash, so a worker can build this mapping from the database directly)."""
    out: dict[str, int] = {}
    for example in stored:
        out.setdefault(pair_hash(example.message, example.reply), example.id)
    return out


def exact_duplicates(
    synthetic: Sequence[Pair], stored: Mapping[str, int] | None = None
) -> list[Duplicate]:
    """Synthetic examples whose normalised pair is already stored or appeared earlier.

    Args:
        synthetic: the new examples, in order.
        stored: pair hash -> stored example id (see :func:`stored_hashes`).

    Returns:
        One :class:`Duplicate` per removed example, in input order.
    """
    stored = stored or {}
    first: dict[str, int] = {}
    found: list[Duplicate] = []
    for i, example in enumerate(synthetic):
        digest = pair_hash(example.message, example.reply)
        if digest in stored:
            found.append(Duplicate(i, "exact", "stored", stored[digest], 1.0))
        elif digest in first:
            found.append(Duplicate(i, "exact", "synthetic", first[digest], 1.0))
        else:
            first[digest] = i
    return found


def _cos64(rows: np.ndarray, vector: np.ndarray) -> np.ndarray:
    """Float64 dot products, summed the same way whether one row or many, so every path
    through the code reaches the same number for the same pair."""
    return np.asarray((rows * vector).sum(axis=-1))


class _Index:
    """A FAISS inner-product index plus who owns each of its rows."""

    def __init__(self, dim: int, total: int, sample: np.ndarray, config: DedupConfig) -> None:
        # Imported here, not with the module: importing safeguards (the web process does, for
        # the gate's names) loads no FAISS; only deduplication, in a worker, needs it.
        import faiss

        self.kind: Literal["flat", "ivf"]
        if total <= config.exact_limit:
            self.kind = "flat"
            self.quantizer = None
            self.index: faiss.Index = faiss.IndexFlatIP(dim)
        else:
            self.kind = "ivf"
            nlist = config.nlist or max(1, round(math.sqrt(total)))
            nlist = max(1, min(nlist, len(sample)))
            # Kept as an attribute: the IVF index only borrows its quantizer.
            self.quantizer = faiss.IndexFlatIP(dim)
            ivf = faiss.IndexIVFFlat(self.quantizer, dim, nlist, faiss.METRIC_INNER_PRODUCT)
            ivf.cp.seed = config.seed
            ivf.train(sample)
            ivf.nprobe = min(config.nprobe, nlist)
            self.index = ivf
        # Row r of the index is row ``ref[r]`` of the stored vectors when ``is_stored[r]``,
        # else of the synthetic vectors.
        self.ref = np.zeros(total, dtype=np.int64)
        self.is_stored = np.zeros(total, dtype=bool)

    def add(self, vectors: np.ndarray, refs: np.ndarray, stored: bool) -> None:
        if len(vectors) == 0:
            return
        start = self.index.ntotal
        self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        self.ref[start : start + len(vectors)] = refs
        self.is_stored[start : start + len(vectors)] = stored

    def nearest(self, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Best cosine and index row per query; -inf and -1 where nothing was found."""
        if self.index.ntotal == 0:
            return np.full(len(queries), -np.inf), np.full(len(queries), -1, dtype=np.int64)
        sims, rows = self.index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
        sims = sims[:, 0].astype(np.float64)
        rows = rows[:, 0].astype(np.int64)
        sims[rows < 0] = -np.inf
        return sims, rows


def _training_sample(
    synthetic: np.ndarray, stored: np.ndarray | None, size: int, seed: int
) -> np.ndarray:
    n_stored = 0 if stored is None else len(stored)
    total = len(synthetic) + n_stored
    rows = np.sort(np.random.default_rng(seed).choice(total, min(size, total), replace=False))
    parts = []
    if stored is not None:
        parts.append(np.asarray(stored[rows[rows < n_stored]], dtype=np.float32))
    parts.append(np.asarray(synthetic[rows[rows >= n_stored] - n_stored], dtype=np.float32))
    return np.ascontiguousarray(np.concatenate(parts))


def semantic_duplicates(
    vectors: np.ndarray,
    stored: np.ndarray | None = None,
    stored_ids: Sequence[int] | np.ndarray | None = None,
    config: DedupConfig | None = None,
) -> list[Duplicate]:
    """Synthetic pair embeddings that nearly duplicate a stored one or an earlier kept one.

    Args:
        vectors: (n, d) normalised pair embeddings of the synthetic examples, in order
            (a ``np.memmap`` works: rows are read chunk by chunk).
        stored: (m, d) normalised pair embeddings of everything already stored, or None.
        stored_ids: the id of each stored row (default: its position).
        config: see :class:`DedupConfig`.

    Returns:
        One :class:`Duplicate` per removed example (stage ``semantic``), in input order; each
        names the most similar example at or above the threshold.
    """
    config = config or DedupConfig()
    t = config.threshold
    n, dim = vectors.shape
    n_stored = 0 if stored is None else len(stored)
    if stored is not None and stored.shape[1] != dim:
        raise ValueError(f"stored vectors have {stored.shape[1]} dimensions, not {dim}")
    ids = np.arange(n_stored) if stored_ids is None else np.asarray(stored_ids, dtype=np.int64)
    if len(ids) != n_stored:
        raise ValueError(f"{len(ids)} stored ids for {n_stored} stored vectors")
    if n == 0:
        return []

    total = n + n_stored
    sample = np.zeros((0, dim), dtype=np.float32)
    if total > config.exact_limit:
        nlist = config.nlist or max(1, round(math.sqrt(total)))
        sample = _training_sample(vectors, stored, config.train_size or 64 * nlist, config.seed)
    index = _Index(dim, total, sample, config)
    del sample
    if stored is not None:
        for start in range(0, n_stored, config.chunk_size):
            block = stored[start : start + config.chunk_size]
            index.add(block, np.arange(start, start + len(block)), stored=True)

    def vector_of(row: int) -> np.ndarray:
        ref = int(index.ref[row])
        source = stored if index.is_stored[row] and stored is not None else vectors
        return np.asarray(source[ref], dtype=np.float64)

    removed: list[Duplicate] = []
    for start in range(0, n, config.chunk_size):
        block = np.ascontiguousarray(vectors[start : start + config.chunk_size], np.float32)
        best, rows = index.nearest(block)
        block64 = block.astype(np.float64)
        # Near the threshold, float32 sums in different orders can disagree; decide in float64.
        for i in np.nonzero(np.abs(best - t) < _RECHECK_MARGIN)[0]:
            best[i] = float(_cos64(block64[i], vector_of(rows[i])))
        best_is_stored = np.where(rows >= 0, index.is_stored[np.maximum(rows, 0)], False)
        best_ref = np.where(rows >= 0, index.ref[np.maximum(rows, 0)], -1)

        # Earlier rows of the same chunk. Row by row, never a list of all close pairs: a
        # chunk of near-identical rows (what a collapsing model writes) has chunk^2 of them.
        gram = block @ block.T
        near = np.tril(gram >= t - _RECHECK_MARGIN, k=-1)
        keep = best < t
        # Ascending: every j < i is decided by the time row i is.
        for i in np.nonzero(near.any(axis=1))[0]:
            js = np.nonzero(near[i, :i])[0]
            js = js[keep[js]]
            if len(js) == 0:
                continue
            sims = gram[i, js].astype(np.float64)
            close = np.abs(sims - t) < _RECHECK_MARGIN
            if close.any():
                sims[close] = _cos64(block64[js[close]], block64[i])
            top = int(np.argmax(sims))
            if sims[top] >= t and sims[top] > best[i]:
                best[i] = sims[top]
                best_is_stored[i] = False
                best_ref[i] = start + int(js[top])
            keep[i] = best[i] < t
        del gram, near

        for i in np.nonzero(~keep)[0]:
            ref = int(best_ref[i])
            source = stored if best_is_stored[i] and stored is not None else vectors
            # Reported in float64 so the record does not depend on the chunking either.
            similarity = float(_cos64(block64[i], np.asarray(source[ref], dtype=np.float64)))
            if best_is_stored[i]:
                duplicate = Duplicate(
                    start + int(i), "semantic", "stored", int(ids[ref]), similarity
                )
            else:
                duplicate = Duplicate(start + int(i), "semantic", "synthetic", ref, similarity)
            removed.append(duplicate)
        kept_rows = np.nonzero(keep)[0]
        index.add(block[kept_rows], start + kept_rows, stored=False)
    return removed


def deduplicate(
    synthetic: Sequence[T],
    stored: Sequence[StoredPair],
    encoder: TextEncoder,
    config: DedupConfig | None = None,
) -> DedupResult[T]:
    """Exact, then semantic deduplication of synthetic examples against themselves and
    everything stored.

    Args:
        synthetic: the new examples, in order (earlier ones win).
        stored: the examples already stored (never removed); each with an ``id``.
        encoder: the base encoder for pair embeddings.
        config: see :class:`DedupConfig`.

    Returns:
        A :class:`DedupResult`; each removal's ``index`` and, for synthetic duplicates,
        ``duplicate_of`` are positions in ``synthetic``.
    """
    config = config or DedupConfig()
    exact = exact_duplicates(synthetic, stored_hashes(stored))
    exact_removed = {d.index for d in exact}
    survivors = [i for i in range(len(synthetic)) if i not in exact_removed]
    vectors = encode_pairs(encoder, [synthetic[i] for i in survivors], config.chunk_size)
    stored_vectors = encode_pairs(encoder, stored, config.chunk_size) if stored else None
    semantic = semantic_duplicates(
        vectors, stored_vectors, [s.id for s in stored] if stored else None, config
    )
    # Back from positions among the survivors to positions in the input.
    semantic = [
        Duplicate(
            survivors[d.index],
            d.stage,
            d.against,
            survivors[d.duplicate_of] if d.against == "synthetic" else d.duplicate_of,
            d.similarity,
        )
        for d in semantic
    ]
    removed = sorted(exact + semantic, key=lambda d: d.index)
    gone = {d.index for d in removed}
    kept_indices = [i for i in range(len(synthetic)) if i not in gone]
    return DedupResult([synthetic[i] for i in kept_indices], kept_indices, removed)
