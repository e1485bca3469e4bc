"""The encoder's backends side by side: throughput, and what each does to relevance.

Usage:
    .venv/bin/python -m bench.encoder_backends [--work-dir var/bench-backends] [--out docs/figures/encoder_backends.json]

For each backend (PyTorch, ONNX Runtime, ONNX Runtime int8), in the same run:
- throughput on distinct demo messages (numbered, so no cache answers) in batches of 64, 4
  and 1; the best of three rounds, the rounds interleaved across backends so machine noise
  hits all of them alike;
- how close its vectors are to PyTorch's (cosine, min and mean);
- relevance: generation 0 trained from scratch on the demo data with that backend, then
  its top 3 on the benchmark split scored by one fixed yardstick, the PyTorch encoder, so
  only the model differs between rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from bench.common import BENCH_DEMO
from bench.common import distinct_messages
from bench.common import encode_rate
from core.db import Database
from core.demo import load_demo
from core.provenance import Provenance
from core.reservoir import benchmark_ids
from core.schema import Example
from core.settings import load_settings
from models.artifact import load_model
from models.encoder import BACKENDS
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from safeguards.relevance import best_similarity
from safeguards.relevance import first_match_ranks
from safeguards.relevance import relevance_figures
from worker.baseline import train_baseline
from worker.context import PipelineContext

BATCHES = (64, 4, 1)
MESSAGES = {64: 2_048, 4: 400, 1: 200}
ROUNDS = 3


@dataclass
class BackendRow:
    load_seconds: float
    per_second: dict[str, float]
    cosine_min: float
    cosine_mean: float
    recall3: float
    mrr3: float
    similarity3: float


def throughput(encoders: dict[str, Encoder]) -> dict[str, dict[str, float]]:
    texts = distinct_messages(MESSAGES[64])
    best: dict[str, dict[str, float]] = {name: {} for name in encoders}
    for _ in range(ROUNDS):
        for name, encoder in encoders.items():
            for batch in BATCHES:
                per_s = encode_rate(encoder, texts[: MESSAGES[batch]], batch)
                key = f"batch {batch}"
                best[name][key] = max(best[name].get(key, 0.0), round(per_s, 1))
    return best


def trained_top3(work_dir: Path, backend: str) -> tuple[list[str], list[str], list[list[str]]]:
    """Benchmark messages, their real replies and the model's top 3, for a fresh generation 0."""
    data_dir = work_dir / backend
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = load_settings({"data_dir": str(data_dir), "encoder_backend": backend, **BENCH_DEMO})
    db = Database(settings)
    db.upgrade()
    encoder = Encoder.from_settings(settings)
    with db.session() as session:
        load_demo(session, settings)
    train_baseline(PipelineContext(settings, db, encoder), "bench")
    with db.session() as session:
        version = production(session)
        assert version is not None
        held_out = benchmark_ids(session)
        bench = [
            e
            for e in session.scalars(
                select(Example)
                .where(Example.provenance == Provenance.HUMAN.value)
                .order_by(Example.id)
            )
            if e.id in held_out
        ]
        model, _ = load_model(artifact_dir(settings, version), encoder, version.checksum)
    db.dispose()
    messages_ = [e.message for e in bench]
    top3 = [[s.text for s in row] for row in model.suggest_many(messages_, k=3)]
    return messages_, [e.reply for e in bench], top3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="var/bench-backends")
    parser.add_argument("--out", default="docs/figures/encoder_backends.json")
    args = parser.parse_args()
    work_dir = Path(args.work_dir)
    settings = load_settings({})

    encoders: dict[str, Encoder] = {}
    load_seconds: dict[str, float] = {}
    for backend in BACKENDS:
        start = time.perf_counter()
        encoders[backend] = Encoder(backend=backend, cache_size=0)
        load_seconds[backend] = round(time.perf_counter() - start, 2)
    speed = throughput(encoders)

    probe = distinct_messages(MESSAGES[64])
    reference = encoders["torch"].encode(probe)
    yardstick = encoders["torch"]
    report: dict[str, BackendRow] = {}
    benchmark: list[str] | None = None
    for backend, encoder in encoders.items():
        cosine = (encoder.encode(probe) * reference).sum(axis=1)
        bench_messages, gold, top3 = trained_top3(work_dir, backend)
        # The benchmark split depends only on the data and the seed; check that it did not move.
        assert benchmark in (None, bench_messages), "benchmark split differs between backends"
        benchmark = bench_messages
        figures = relevance_figures(
            first_match_ranks(top3, gold, yardstick, settings.match_threshold), ks=(3,)
        )
        report[backend] = BackendRow(
            load_seconds=load_seconds[backend],
            per_second=speed[backend],
            cosine_min=float(cosine.min()),
            cosine_mean=float(cosine.mean()),
            recall3=figures["recall@3"],
            mrr3=figures["mrr"],
            similarity3=float(best_similarity(top3, gold, yardstick, 3).mean()),
        )
    torch_row = report["torch"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {"cpus": os.cpu_count(), "benchmark_examples": len(benchmark or [])}
    out.write_text(json.dumps({**summary, **{k: asdict(v) for k, v in report.items()}}, indent=2))
    print(f"benchmark: {summary['benchmark_examples']} examples; cpus: {summary['cpus']}")
    print(
        "| backend | batch 64 | batch 4 | batch 1 | x PyTorch at 64 | cosine min / mean "
        "| recall@3 | change | similarity@3 |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for backend, row in report.items():
        speed_row = row.per_second
        print(
            f"| {backend} | {speed_row['batch 64']:.0f}/s | {speed_row['batch 4']:.0f}/s "
            f"| {speed_row['batch 1']:.0f}/s "
            f"| {speed_row['batch 64'] / torch_row.per_second['batch 64']:.2f}x "
            f"| {row.cosine_min:.4f} / {row.cosine_mean:.4f} "
            f"| {row.recall3:.3f} | {row.recall3 - torch_row.recall3:+.3f} "
            f"| {row.similarity3:.3f} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
