from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import faiss
import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from safeguards.dedup import DedupConfig
from safeguards.dedup import deduplicate
from safeguards.dedup import exact_duplicates
from safeguards.dedup import pair_embeddings
from safeguards.dedup import semantic_duplicates
from safeguards.dedup import stored_hashes


@dataclass(frozen=True)
class Pair:
    message: str
    reply: str


@dataclass(frozen=True)
class Stored:
    id: int
    message: str
    reply: str


class WordEncoder:
    """Texts made of the words "w0".."w7": a unit vector with a 1 per word (bag of words)."""

    dim = 8

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = np.zeros((len(texts), self.dim), dtype=np.float32)
        for i, text in enumerate(texts):
            for word in text.split():
                rows[i, int(word[1:])] += 1.0
            if not rows[i].any():
                rows[i, int(hashlib.sha256(text.encode()).digest()[0]) % self.dim] = 1.0
        return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def unit(*values: float) -> np.ndarray:
    v = np.array(values, dtype=np.float64)
    return v / np.linalg.norm(v)


def planted(n: int, d: int, dup_share: float, seed: int) -> np.ndarray:
    """Clustered unit vectors, a share of them near-copies (cosine ~0.99) of earlier rows."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(max(2, n // 50), d))
    x = centres[rng.integers(len(centres), size=n)] + rng.normal(size=(n, d))
    # In ascending order, so a copy of a copy is made from its final value.
    copies = np.sort(rng.choice(np.arange(1, n), int(dup_share * n), replace=False))
    for row in copies:
        x[row] = x[rng.integers(row)] + 0.1 * rng.normal(size=d) / np.sqrt(d) * np.linalg.norm(
            x[row]
        )
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x.astype(np.float32)


def test_exact_duplicates_against_stored_and_earlier_examples() -> None:
    synthetic = [Pair("Hi", "Hello"), Pair(" hi ", "HELLO"), Pair("a", "b"), Pair("c", "d")]
    stored = [Stored(7, "a", "b"), Stored(9, "A", "B")]
    found = exact_duplicates(synthetic, stored_hashes(stored))
    assert [(d.index, d.against, d.duplicate_of) for d in found] == [
        (1, "synthetic", 0),
        (2, "stored", 7),  # the first stored example with that pair
    ]
    assert all(d.stage == "exact" and d.similarity == 1.0 for d in found)


def test_semantic_duplicates_name_what_they_duplicate() -> None:
    e1, e2, e3 = np.eye(3)
    stored = np.array([e1])
    synthetic = np.array(
        [
            unit(1, 0.1, 0),  # cos with e1 = 1/sqrt(1.01) = 0.995  -> stored 42
            e2,  # kept
            unit(0, 1, 0.2),  # cos with e2 = 1/sqrt(1.04) = 0.981  -> synthetic 1
            e3,  # cos with row 2 = 0.196: kept
        ]
    )
    found = semantic_duplicates(synthetic, stored, [42], DedupConfig(threshold=0.95))
    assert [(d.index, d.against, d.duplicate_of) for d in found] == [
        (0, "stored", 42),
        (2, "synthetic", 1),
    ]
    assert found[0].similarity == pytest.approx(1 / np.sqrt(1.01), abs=1e-6)
    assert found[1].similarity == pytest.approx(1 / np.sqrt(1.04), abs=1e-6)


def test_only_kept_examples_can_make_later_ones_duplicates() -> None:
    # A, B, C on a circle: cos(A,B) = cos(B,C) = 0.97, cos(A,C) = 2 * 0.97^2 - 1 = 0.8818.
    theta = np.arccos(0.97)
    a, b, c = (unit(np.cos(k * theta), np.sin(k * theta)) for k in range(3))
    found = semantic_duplicates(np.array([a, b, c]), config=DedupConfig(threshold=0.95))
    # B is a copy of A and goes; C resembles only B, which is gone, so C stays.
    assert [(d.index, d.duplicate_of) for d in found] == [(1, 0)]


def test_a_threshold_hit_exactly_counts_as_a_duplicate() -> None:
    v = np.array([[1.0, 0.0], [1.0, 0.0]])
    assert len(semantic_duplicates(v, config=DedupConfig(threshold=1.0))) == 1


def pair_on_the_threshold() -> tuple[np.ndarray, np.ndarray, float]:
    """Two float32 unit vectors and, as the threshold, their exact (float64) cosine, chosen so
    that the float32 products (FAISS's and numpy's) fall just below it: only a float64
    decision sees the hit."""
    for seed in range(200):
        rng = np.random.default_rng(seed)
        a = rng.normal(size=384)
        b = a + 0.2 * rng.normal(size=384)
        a32 = (a / np.linalg.norm(a)).astype(np.float32)
        b32 = (b / np.linalg.norm(b)).astype(np.float32)
        exact = float((a32.astype(np.float64) * b32.astype(np.float64)).sum())
        both = np.stack([a32, b32])
        index = faiss.IndexFlatIP(384)
        index.add(a32[None, :])
        searched = float(index.search(b32[None, :], 1)[0][0, 0])
        if searched < exact and float((both @ both.T)[1, 0]) < exact:
            return a32, b32, exact
    raise AssertionError("no pair found")


@pytest.mark.parametrize("chunk", [1, 2])
def test_a_hit_exactly_on_the_threshold_is_decided_in_float64(chunk: int) -> None:
    a, b, threshold = pair_on_the_threshold()
    config = DedupConfig(threshold=threshold, chunk_size=chunk)
    # chunk 1: b meets a through the index; chunk 2: inside one chunk.
    found = semantic_duplicates(np.stack([a, b]), config=config)
    assert [(d.index, d.duplicate_of) for d in found] == [(1, 0)]
    against_stored = semantic_duplicates(b[None, :], a[None, :], [5], config)
    assert [(d.index, d.against, d.duplicate_of) for d in against_stored] == [(0, "stored", 5)]


def test_a_chunk_of_near_identical_rows_keeps_one() -> None:
    # What a collapsing model writes: thousands of almost the same example.
    rng = np.random.default_rng(0)
    base = rng.normal(size=64)
    x = base + 1e-3 * rng.normal(size=(3000, 64))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    found = semantic_duplicates(x, config=DedupConfig(chunk_size=2048))
    assert [d.index for d in found] == list(range(1, 3000))


def test_stored_examples_are_never_removed() -> None:
    stored = np.array([unit(1, 0), unit(1, 0), unit(1, 0.01)])  # duplicates among themselves
    synthetic = np.array([unit(0, 1)])
    assert semantic_duplicates(synthetic, stored, [1, 2, 3]) == []


def test_chunking_does_not_change_the_result() -> None:
    x = planted(600, 16, 0.2, seed=1)
    stored = planted(100, 16, 0.0, seed=2)
    results = [
        semantic_duplicates(x, stored, None, DedupConfig(chunk_size=size))
        for size in (1, 7, 128, 4096)
    ]
    assert len(results[0]) >= 100  # most of the 120 planted copies, plus natural ones
    assert all(result == results[0] for result in results[1:])


def test_ivf_above_the_size_threshold_finds_what_exact_search_finds() -> None:
    x = planted(4000, 32, 0.1, seed=3)
    exact = semantic_duplicates(x, config=DedupConfig(exact_limit=10_000))
    ivf = semantic_duplicates(x, config=DedupConfig(exact_limit=1_000, nprobe=8))
    exact_rows = {d.index for d in exact}
    ivf_rows = {d.index for d in ivf}
    assert len(exact_rows) >= 380
    assert len(exact_rows & ivf_rows) / len(exact_rows) >= 0.98
    # Run again on what the IVF pass kept: nothing more to remove.
    kept = np.delete(x, sorted(ivf_rows), axis=0)
    assert semantic_duplicates(kept, config=DedupConfig(exact_limit=1_000, nprobe=8)) == []


def test_deduplicate_runs_exact_then_semantic_and_maps_back_to_input_positions() -> None:
    stored = [Stored(10, "w0", "w1"), Stored(11, "w2 w2", "w3")]
    synthetic = [
        Pair("w4", "w5"),  # 0 kept
        Pair("W0", "w1"),  # 1 exact copy of stored 10
        Pair("w4", "w5"),  # 2 exact copy of synthetic 0
        Pair("w2", "w3"),  # 3 same bag-of-words direction as stored 11: semantic
        Pair("w6", "w7"),  # 4 kept
        Pair("w6 w6", "w7 w7"),  # 5 semantic copy of synthetic 4 (same directions)
    ]
    result = deduplicate(synthetic, stored, WordEncoder())
    assert result.kept_indices == [0, 4]
    assert [(d.index, d.stage, d.against, d.duplicate_of) for d in result.removed] == [
        (1, "exact", "stored", 10),
        (2, "exact", "synthetic", 0),
        (3, "semantic", "stored", 11),
        (5, "semantic", "synthetic", 4),
    ]
    assert result.counts == {"exact": 2, "semantic": 2}
    again = deduplicate(result.kept, stored, WordEncoder())
    assert again.removed == []


def test_pair_embedding_is_the_normalised_mean() -> None:
    m = np.array([[1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    r = np.array([[0.0, 1.0], [-1.0, 0.0]], dtype=np.float32)
    out = pair_embeddings(m, r)
    assert out[0] == pytest.approx([np.sqrt(0.5), np.sqrt(0.5)])
    # Opposite message and reply have no mean direction: the message stands in.
    assert out[1] == pytest.approx([1.0, 0.0])


vectors = arrays(
    np.float32,
    st.tuples(st.integers(1, 40), st.just(3)),
    elements=st.floats(-1, 1, width=32, allow_nan=False),
)


def _unit_rows(x: np.ndarray) -> np.ndarray:
    # A zero row has no direction: give it one.
    x = x.copy()
    x[np.linalg.norm(x, axis=1) < 1e-3, 0] = 1.0
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@settings(max_examples=80, deadline=None)
@given(vectors, vectors, st.floats(0.5, 0.999), st.integers(1, 9))
def test_semantic_dedup_is_idempotent(
    synthetic: np.ndarray, stored: np.ndarray, threshold: float, chunk: int
) -> None:
    synthetic, stored = _unit_rows(synthetic), _unit_rows(stored)
    config = DedupConfig(threshold=threshold, chunk_size=chunk)
    removed = semantic_duplicates(synthetic, stored, None, config)
    kept = np.delete(synthetic, [d.index for d in removed], axis=0)
    assert semantic_duplicates(kept, stored, None, config) == []
    # And what was kept is pairwise below the threshold.
    sims = kept.astype(np.float64) @ kept.T.astype(np.float64)
    assert np.all(np.tril(sims, k=-1) < threshold)


words = st.lists(st.sampled_from([f"w{i}" for i in range(8)]), min_size=1, max_size=3).map(" ".join)
pairs = st.lists(st.builds(Pair, words, words), max_size=25)


@settings(max_examples=60, deadline=None)
@given(pairs, st.lists(st.builds(Pair, words, words), max_size=5))
def test_deduplicate_is_idempotent(synthetic: list[Pair], stored_pairs: list[Pair]) -> None:
    stored = [Stored(100 + i, p.message, p.reply) for i, p in enumerate(stored_pairs)]
    first = deduplicate(synthetic, stored, WordEncoder())
    assert deduplicate(first.kept, stored, WordEncoder()).removed == []
    assert len(first.kept) + len(first.removed) == len(synthetic)
