"""Wall time of one generation, per stage, on the demo data and on a set ten times larger.

Usage:
    .venv/bin/python -m bench.generation [--scales 1 4 10] [--out docs/figures/generation.json]

For each scale, a fresh data folder: the chatterbot demo data (and its incoming traffic) is
loaded, the clean baseline trained, then one generation runs through every stage in this
process (the same stage functions a Celery worker runs; queueing adds milliseconds per stage).

The larger sets are made so that every text stays distinct: copy k (k = 1 .. scale-1) of
each demo message, reply and traffic message gets the suffix " (k)". The copies are near
duplicates by meaning, which is what a production stream of similar traffic looks like to
the deduplication stage; each copy still costs a full encoder pass. The embedding cache
starts empty at every scale.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench.common import BENCH_DEMO
from core.demo import load_demo
from core.generations import get_generation
from core.ingest import ExampleIn
from core.ingest import add_examples
from core.provenance import Provenance
from core.schema import IncomingMessage
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.pipeline import STAGES
from worker.pipeline import run_generation
from worker.pipeline import start_generation
from worker.settings import load_settings


def build(ctx: PipelineContext, scale: int) -> dict[str, int]:
    from sqlalchemy import select

    with ctx.db.session() as session:
        load_demo(session, ctx.settings)
    with ctx.db.session() as session:
        from core.schema import Example

        examples = list(session.scalars(select(Example)))
        traffic = list(session.scalars(select(IncomingMessage)))
        for k in range(1, scale):
            add_examples(
                session,
                [
                    ExampleIn(
                        f"{e.message} ({k})", f"{e.reply} ({k})", e.niche, Provenance(e.provenance)
                    )
                    for e in examples
                ],
                source=f"bench:x{scale}",
            )
            session.add_all(
                IncomingMessage(message=f"{m.message} ({k})", niche=m.niche) for m in traffic
            )
    return {"examples": len(examples) * scale, "traffic": len(traffic) * scale}


def run(scale: int, root: Path) -> dict[str, object]:
    settings = load_settings(
        {"data_dir": str(root / f"x{scale}"), "synthesize_max_prompts": 1_000_000, **BENCH_DEMO}
    )
    ctx = PipelineContext.from_settings(settings)
    sizes = build(ctx, scale)
    start = time.perf_counter()
    train_baseline(ctx, "bench")
    baseline_seconds = time.perf_counter() - start
    start = time.perf_counter()
    generation_id = start_generation(ctx, "bench")
    status = run_generation(ctx, generation_id)
    total = time.perf_counter() - start
    with ctx.db.session() as session:
        generation = get_generation(session, generation_id)
        stages = {s: round(generation.stages[s]["seconds"], 2) for s in STAGES}
        counts = generation.stages["synthesize"]["counts"]
        reasons = generation.decision.get("reasons", [])
    return {
        "scale": scale,
        **sizes,
        "prompts": counts["prompts"],
        "baseline_seconds": round(baseline_seconds, 1),
        "generation_seconds": round(total, 1),
        "status": status,
        "stages": stages,
        "gate_reasons": reasons,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10])
    parser.add_argument("--out", default="docs/figures/generation.json")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp:
        for scale in args.scales:
            result = run(scale, Path(tmp))
            results.append(result)
            print(json.dumps(result))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))

    def row(name: str, cells: list[str]) -> None:
        print(f"| {name} | " + " | ".join(cells) + " |")

    row("stage", [f"{r['scale']}x" for r in results])
    row("---", ["---"] * len(results))
    for stage in STAGES:
        row(stage, [f"{r['stages'][stage]:.1f} s" for r in results])  # type: ignore[index]
    row("**total**", [f"{r['generation_seconds']} s" for r in results])
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
