"""How much each metric of the collapse report moves between trainings on the same data with
different seeds: the noise that the gate's tolerances and its early warning are read against.

Usage (from the repository root):
    .venv/bin/python -m bench.collapse_noise [--seeds 4] [--data FILE]
    # writes docs/figures/collapse_noise.json (or collapse_noise-<file stem>.json)

The data folder is the one ``make run`` trains (bench.common.prepare: the demo, or FILE
imported); its benchmark and training rows stay fixed. The model is trained again on the
same training rows with seeds 13, 14, ... (the adapter's initialisation and batch order, and
the held-out tenth that calibrates triggering), the signal weights pinned to generation 0's
as every generation keeps its parent's, and each model is evaluated on the same benchmark
by the gate's evaluator and the comparison detector (safeguards.detector). Per metric: the
mean, the standard deviation, the relative standard deviation, the largest relative
difference between two seeds, and the gate's tolerance beside it (how many standard
deviations of a two-seed difference it allows: 3 or more rarely blocks a retrain that
changed nothing).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from bench.common import prepare
from core.db import Database
from models.encoder import Encoder
from models.training import Inherited
from models.training import train_model
from safeguards.detector import detector_metrics
from safeguards.evaluator import BenchmarkExample
from safeguards.evaluator import SuggestionEvaluator
from safeguards.gate import Tolerances
from safeguards.metrics import MetricKind
from safeguards.metrics import gated_by_default
from worker.context import PipelineContext
from worker.settings import load_settings

FIGURES = Path("docs/figures")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--data", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="collapse-noise-") as tmp:
        settings = load_settings({"data_dir": str(Path(tmp) / "cache")})
        encoder = Encoder.from_config(settings.encoder, settings.embedding_cache)
        data = prepare(args.data.name if args.data else "demo", Path(tmp), encoder, args.data)
        db = Database(data.settings)
        examples = [r.for_training() for r in data.train]
        benchmark = [BenchmarkExample(r.message, r.reply, r.niche) for r in data.benchmark]
        counts = dict(Counter(r.niche for r in data.train + data.benchmark))
        config = data.settings.evaluation
        evaluator = SuggestionEvaluator(benchmark, encoder, counts, config)
        panels: list[dict[str, float]] = []
        kinds: dict[str, MetricKind] = {}
        for seed in range(13, 13 + args.seeds):
            ctx = PipelineContext(data.settings.with_overrides(seed=seed), db, encoder)
            model, _ = train_model(
                encoder,
                examples,
                config=ctx.training_config(),
                inherited=Inherited(weights=data.model.weights),
            )
            evaluation = evaluator(model)
            shown = [t for row in evaluation.suggestions for t in row[: config.diversity_k]]
            detector = detector_metrics(shown, [r.reply for r in data.benchmark])
            panels.append(
                {**evaluation.values(), **{f"detector_{k}": v for k, v in detector.items()}}
            )
            kinds.update({name: m.kind for name, m in evaluation.metrics.items()})
            print(f"seed {seed}: similarity@3 {panels[-1]['similarity@3']:.4f}", flush=True)
        db.dispose()
    tolerances = Tolerances()
    metrics = {}
    for name in panels[0]:
        values = np.array([p[name] for p in panels])
        mean = float(values.mean())
        sd = float(values.std(ddof=1))
        relative_sd = sd / abs(mean) if mean else 0.0
        widest = max(abs(a - b) for a, b in itertools.combinations(values, 2))
        kind = kinds.get(name)
        # As the gate holds them (safeguards.gate); the detector's metrics have no kind.
        tolerance = None
        if kind is not None and (name == config.primary or gated_by_default(name, kind)):
            tolerance = tolerances.relative(name, kind)
        metrics[name] = {
            "values": [round(float(v), 5) for v in values],
            "mean": mean,
            "sd": sd,
            "relative_sd": relative_sd,
            "widest_relative_difference": widest / abs(mean) if mean else 0.0,
            "tolerance": tolerance,
            # The tolerance in standard deviations of the difference of two seeds.
            "tolerance_in_sd_of_a_difference": (
                tolerance / (math.sqrt(2) * relative_sd) if tolerance and relative_sd else None
            ),
        }
    out = FIGURES / (
        f"collapse_noise-{args.data.stem}.json" if args.data else "collapse_noise.json"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "data": data.name,
                "seeds": list(range(13, 13 + args.seeds)),
                "training_examples": len(examples),
                "benchmark": len(benchmark),
                "metrics": metrics,
            },
            indent=2,
        )
    )
    print(f"wrote {out}")
    for name, f in metrics.items():
        in_sd = f["tolerance_in_sd_of_a_difference"]
        print(
            f"{name:32s} mean {f['mean']:.4f}  rel sd {100 * f['relative_sd']:.2f}%  "
            f"widest {100 * f['widest_relative_difference']:.2f}%"
            + (f"  tolerance {100 * f['tolerance']:.0f}% = {in_sd:.1f} sd" if in_sd else "")
        )


if __name__ == "__main__":
    main()
