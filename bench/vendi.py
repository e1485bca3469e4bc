"""Our Vendi score (d x d covariance) against the vendi-score package's kernel computation.

Usage:
    .venv/bin/python -m bench.vendi [--n 100000] [--budget 60] [--out docs/figures/vendi.json]

Same run, same data: 384-d unit vectors, clustered (one centre per 100 rows, the row its
centre plus noise of the same scale), like suggestion embeddings of a benchmark.

- ours: ``safeguards.diversity.vendi_score`` on all ``--n`` rows (no subsample), and at the
  500-row sample the evaluation uses; O(n d^2).
- the package's kernel path, ``vendi_score.vendi.score_K(X @ X.T)`` (what ``score_X`` and
  ``score`` compute): an n x n kernel and its eigenvalues, O(n^3) time and O(n^2) memory.
  Sizes double from 250 while the next one is expected (8x the last time) to fit the time
  budget; our score is computed at each of those sizes too, and the agreement reported.
- the package's own ``score_dual``, which uses the same d x d identity as ours, at ``--n``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy
from vendi_score import vendi

from safeguards.diversity import DEFAULT_VENDI_SAMPLE
from safeguards.diversity import vendi_score

DIM = 384


def make_data(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(1, n // 100), DIM))
    x = centres[rng.integers(len(centres), size=n)] + rng.standard_normal((n, DIM))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def timed(fn: Callable[..., float], *args: Any, repeat: int = 1) -> tuple[float, float]:
    """(best time in seconds, value) of ``fn(*args)``."""
    best = float("inf")
    value = 0.0
    for _ in range(repeat):
        start = time.perf_counter()
        value = fn(*args)
        best = min(best, time.perf_counter() - start)
    return best, float(value)


def package_kernel(x: np.ndarray) -> float:
    x64 = x.astype(np.float64)
    with warnings.catch_warnings():
        # score_K looks up the deprecated scipy.sparse.csr module on every call.
        warnings.simplefilter("ignore", DeprecationWarning)
        return float(vendi.score_K(x64 @ x64.T))


def package_dual_score(x: np.ndarray) -> float:
    return float(vendi.score_dual(x.astype(np.float64)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="docs/figures/vendi.json")
    args = parser.parse_args()

    x = make_data(args.n, args.seed)
    ours_all_s, ours_all = timed(vendi_score, x, None, repeat=3)
    ours_sample_s, ours_sample = timed(vendi_score, x, DEFAULT_VENDI_SAMPLE, repeat=3)
    dual_s, dual = timed(package_dual_score, x)
    ours = {
        "n": args.n,
        "seconds": round(ours_all_s, 4),
        "score": ours_all,
        "sample_500_seconds": round(ours_sample_s, 5),
        "sample_500_score": ours_sample,
    }
    print(json.dumps({"ours": ours}), flush=True)
    package_dual = {
        "n": args.n,
        "seconds": round(dual_s, 4),
        "score": dual,
        "relative_difference": abs(dual - ours_all) / ours_all,
    }
    print(json.dumps({"package_score_dual": package_dual}), flush=True)

    kernel_runs: list[dict[str, Any]] = []
    size = 250
    spent = 0.0
    while size <= args.n:
        sample = x[:size]
        kernel_s, kernel = timed(package_kernel, sample)
        mine_s, mine = timed(vendi_score, sample, None, repeat=3)
        spent += kernel_s
        row = {
            "n": size,
            "package_seconds": round(kernel_s, 4),
            "ours_seconds": round(mine_s, 5),
            "package_score": kernel,
            "ours_score": mine,
            "relative_difference": abs(kernel - mine) / kernel,
        }
        kernel_runs.append(row)
        print(json.dumps({"package_score_K": row}), flush=True)
        # Eigenvalues of an n x n matrix: doubling n costs about 8x.
        if kernel_s * 8 > args.budget:
            break
        size *= 2

    largest = kernel_runs[-1]
    report = {
        "data": {"dim": DIM, "rows_per_cluster": 100, "seed": args.seed},
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scipy": scipy.__version__,
        },
        "budget_seconds": args.budget,
        "ours": ours,
        "package_score_dual": package_dual,
        "package_score_K": kernel_runs,
        "summary": {
            "ours_n": args.n,
            "ours_seconds": ours["seconds"],
            "package_largest_n": largest["n"],
            "package_seconds_at_largest": largest["package_seconds"],
            "ours_seconds_at_largest": largest["ours_seconds"],
            "package_seconds_spent": round(spent, 2),
        },
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
