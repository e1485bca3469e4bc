"""Semantic deduplication at scale: IVF recall against exact search, and time at 100k and 1M.

Usage:
    .venv/bin/python -m bench.dedup [--sizes 100000,1000000] [--out docs/figures/dedup.json]

The data are synthetic 384-d unit vectors (the size of all-MiniLM-L6-v2 pair embeddings),
made so that a near-duplicate search has real work to do:

- clustered: one centre per 100 rows (standard normal), each row its centre plus standard
  normal noise of the same scale, normalised. Rows of one cluster have cosine ~0.5 and rows
  of different clusters ~0, so clusters are dense but not duplicates;
- planted near-duplicates: 5% of the rows (chosen at random, never row 0) are replaced, in
  ascending order, by a copy of a random earlier row plus noise of 5-35% of its norm
  (uniform), so their cosine to the original spreads over 0.94-0.999: most are above the
  0.95 threshold, some just below, and the search has to tell them apart near it.

For the first size both the exact (``IndexFlatIP``) and the IVF (``IndexIVFFlat``) paths run
on the same data, and the IVF's recall is the share of the exact run's removals that it also
removed. Larger sizes run the IVF path only (exact search grows with n^2). Every run reports
its time, the removals, the share of planted copies found, and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from safeguards.dedup import DedupConfig
from safeguards.dedup import semantic_duplicates

DIM = 384
ROWS_PER_CLUSTER = 100
DUP_SHARE = 0.05
DUP_NOISE = (0.05, 0.35)


def make_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Clustered unit vectors with planted near-duplicates; returns (vectors, planted rows)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // ROWS_PER_CLUSTER), DIM), dtype=np.float32)
    x = np.empty((n, DIM), dtype=np.float32)
    # Chunked, so the temporaries stay small next to the 1.5 GB a million rows take.
    for start in range(0, n, 65_536):
        stop = min(n, start + 65_536)
        members = rng.integers(len(centres), size=stop - start)
        block = centres[members] + rng.standard_normal((stop - start, DIM), dtype=np.float32)
        x[start:stop] = block / np.linalg.norm(block, axis=1, keepdims=True)
    planted = np.sort(rng.choice(np.arange(1, n), int(DUP_SHARE * n), replace=False))
    sources = (rng.random(len(planted)) * planted).astype(np.int64)
    scales = rng.uniform(*DUP_NOISE, size=len(planted)) / np.sqrt(DIM)
    for row, source, scale in zip(planted, sources, scales, strict=True):
        # Row by row in ascending order: a copy of a copy is made from its final value.
        v = x[source] + scale * rng.standard_normal(DIM, dtype=np.float32)
        x[row] = v / np.linalg.norm(v)
    return x, planted


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run(x: np.ndarray, planted: np.ndarray, config: DedupConfig, label: str) -> dict[str, Any]:
    start = time.perf_counter()
    removed = semantic_duplicates(x, config=config)
    seconds = time.perf_counter() - start
    rows = np.array(sorted(d.index for d in removed), dtype=np.int64)
    found = np.isin(planted, rows).mean() if len(planted) else 1.0
    result = {
        "index": label,
        "n": len(x),
        "seconds": round(seconds, 2),
        "removed": len(rows),
        "planted": len(planted),
        "planted_found": round(float(found), 5),
        "peak_rss_mb": round(peak_rss_mb()),
    }
    print(json.dumps(result), flush=True)
    result["_rows"] = rows
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--out", default="docs/figures/dedup.json")
    parser.add_argument("--nprobe", type=int, default=DedupConfig.nprobe)
    parser.add_argument("--chunk-size", type=int, default=DedupConfig.chunk_size)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    runs: list[dict[str, Any]] = []
    recall: dict[str, Any] = {}
    for position, n in enumerate(sizes):
        start = time.perf_counter()
        x, planted = make_data(n, args.seed)
        print(f"n={n}: data made in {time.perf_counter() - start:.1f}s", flush=True)
        # exact_limit 0 forces the IVF path, whatever the size.
        ivf_config = DedupConfig(exact_limit=0, nprobe=args.nprobe, chunk_size=args.chunk_size)
        ivf = run(x, planted, ivf_config, "ivf")
        runs.append(ivf)
        if position == 0:
            exact_config = DedupConfig(exact_limit=n, chunk_size=args.chunk_size)
            exact = run(x, planted, exact_config, "flat")
            runs.append(exact)
            both = np.intersect1d(ivf["_rows"], exact["_rows"])
            recall = {
                "n": n,
                "nprobe": args.nprobe,
                "exact_removed": len(exact["_rows"]),
                "ivf_removed": len(ivf["_rows"]),
                "both": len(both),
                "recall": round(len(both) / max(1, len(exact["_rows"])), 5),
                "ivf_only": len(ivf["_rows"]) - len(both),
                "speedup": round(exact["seconds"] / max(ivf["seconds"], 1e-9), 2),
            }
            print(json.dumps({"recall": recall}), flush=True)
        del x, planted

    report = {
        "data": {
            "dim": DIM,
            "rows_per_cluster": ROWS_PER_CLUSTER,
            "planted_share": DUP_SHARE,
            "planted_noise": list(DUP_NOISE),
            "threshold": DedupConfig.threshold,
            "chunk_size": args.chunk_size,
            "seed": args.seed,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "faiss_threads": faiss.omp_get_max_threads(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "faiss": faiss.__version__,
        },
        "recall_vs_exact": recall,
        "runs": [{k: v for k, v in r.items() if not k.startswith("_")} for r in runs],
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
