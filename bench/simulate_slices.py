"""Wall time of the collapse experiment against the slice size (incoming messages labelled per
generation).

Usage (from the repository root):
    .venv/bin/python -m bench.simulate_slices [--slices 50 100 200 400] [--generations 2]
    # writes docs/figures/simulate_slices.json

For each slice size, ``replyguard simulate --policy all`` on the default demo data as the
command runs it (worker.simulation.run_simulation, every policy, the baseline trained once),
in a fresh folder sharing one embedding cache (each text is encoded once, as in one long
run). Per slice: the total, every policy's mean seconds per generation, and the time outside
the generations (the clean baseline, trained once, and copying its folder per policy). The full 8-generation run's own time is the figure measured by timing the command
itself (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from models.encoder import Encoder
from worker.settings import load_settings
from worker.simulation import FRESH_BY_DEFAULT
from worker.simulation import POLICIES
from worker.simulation import Plan
from worker.simulation import run_simulation
from worker.simulation import simulation_rows

FIGURES = Path("docs/figures")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--generations", type=int, default=2)
    args = parser.parse_args()
    settings = load_settings({"seed": 13})
    rows, _ = simulation_rows("demo", settings)
    runs = []
    with tempfile.TemporaryDirectory(prefix="simulate-slices-") as tmp:
        cache = settings.with_overrides(data_dir=Path(tmp) / "cache").embedding_cache
        encoder = Encoder.from_config(settings.encoder, cache)
        for size in args.slices:
            fresh = {p: max(size // 5, 1) if p in FRESH_BY_DEFAULT else 0 for p in POLICIES}
            work = Path(tmp) / f"slice-{size}"
            work.mkdir()
            started = time.perf_counter()
            results = run_simulation(
                POLICIES,
                Plan(args.generations, size, fresh),
                rows,
                settings,
                encoder,
                work,
                print,
            )
            total = time.perf_counter() - started
            generations = sum(r.seconds for r in results)
            per_policy = {
                p: statistics.mean(r.seconds for r in results if r.policy == p and r.generation)
                for p in POLICIES
            }
            runs.append(
                {
                    "slice": size,
                    "generations": args.generations,
                    "total_seconds": round(total, 1),
                    # The clean baseline (trained once), copying its folder per policy.
                    "outside_generations_seconds": round(total - generations, 1),
                    "seconds_per_generation": {p: round(s, 2) for p, s in per_policy.items()},
                }
            )
            print(json.dumps(runs[-1]), flush=True)
    out = FIGURES / "simulate_slices.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"load_average": os.getloadavg(), "runs": runs}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
