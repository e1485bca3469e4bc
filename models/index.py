"""FAISS inner-product indexes over normalised vectors (inner product = cosine)."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

# HNSW graph degree and search breadth: recall close to exact at these sizes.
HNSW_M = 32
HNSW_EF_SEARCH = 128


def build_index(vectors: np.ndarray, exact_limit: int) -> faiss.Index:
    """An exact flat index up to ``exact_limit`` rows, an HNSW graph above it."""
    dim = vectors.shape[1]
    index: faiss.Index
    if len(vectors) <= exact_limit:
        index = faiss.IndexFlatIP(dim)
    else:
        graph = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efSearch = HNSW_EF_SEARCH
        index = graph
    if len(vectors):
        index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    return index


def search(index: faiss.Index, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k (scores, ids) per query; ids are -1 where the index has fewer than k rows."""
    k = max(1, min(k, index.ntotal))
    return index.search(np.ascontiguousarray(queries, dtype=np.float32), k)


def save_index(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def load_index(path: Path) -> faiss.Index:
    index = faiss.read_index(str(path))
    if isinstance(index, faiss.IndexHNSWFlat):
        index.hnsw.efSearch = HNSW_EF_SEARCH
    return index
