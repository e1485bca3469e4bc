"""The encoder's backends side by side: throughput, batch-dependence, and relevance.

Usage:
    .venv/bin/python -m bench.encoder_backends [--work-dir var/bench-backends] [--out docs/figures/encoder_backends.json] [--rounds 3]

For each backend (PyTorch, ONNX Runtime, ONNX Runtime int8), and for the dynamic int8
quantisation the int8 backend used before (made here, for comparison only: the product no
longer has it), in the same run:
- throughput on distinct demo messages (numbered, so no cache answers) in batches of 64, 4
  and 1; the best of three rounds (``--rounds``), the rounds interleaved across backends so machine noise
  hits all of them alike;
- how close its vectors are to PyTorch's (cosine, min and mean);
- batch-dependence: 200 distinct demo messages each encoded alone and inside a batch of 16
  with 15 others drawn at random (seeded), as the web server's micro-batches mix clients'
  messages: the lowest cosine between the two vectors, and for how many messages the trained
  model's top 3 (and top 1) differ between the two;
- relevance: generation 0 trained from scratch on the demo data with that encoder, then
  its top 3 on the benchmark split scored by one fixed yardstick, the PyTorch encoder, so
  only the model differs between rows.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
import warnings
from dataclasses import asdict
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from bench.common import BENCH_DEMO
from bench.common import distinct_messages
from bench.common import encode_rate
from core.db import Database
from core.demo import chatterbot_rows
from core.demo import load_demo
from core.provenance import Provenance
from core.reservoir import benchmark_ids
from core.schema import Example
from models.artifact import load_model
from models.encoder import BACKENDS
from models.encoder import Encoder
from models.onnx_encoder import OnnxTextEncoder
from models.onnx_export import INT8_FILE
from models.onnx_export import exported_model
from models.registry import artifact_dir
from models.registry import production
from models.suggester import SuggestionModel
from safeguards.relevance import best_similarity
from safeguards.relevance import encode_ranked
from safeguards.relevance import first_match_ranks
from safeguards.relevance import gold_cosines
from safeguards.relevance import relevance_metrics
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.settings import load_settings

BATCHES = (64, 4, 1)
MESSAGES = {64: 2_048, 4: 400, 1: 200}
ROUNDS = 3  # the default of --rounds
DYNAMIC = "onnx-int8 dynamic (before)"
PROBES = 200
NEIGHBOURS = 15


@dataclass
class BackendRow:
    load_seconds: float
    per_second: dict[str, float]
    cosine_min: float
    cosine_mean: float
    alone_vs_batched_cosine_min: float
    top3_changed: int
    top1_changed: int
    accuracy3: float
    mrr3: float
    similarity3: float


def dynamic_int8_encoder(work_dir: Path) -> Encoder:
    """An encoder running the previous default: sentence-transformers' dynamic int8 export
    (activation scales computed per batch at run time), for this CPU."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.backend import export_dynamic_quantized_onnx_model

    encoder = Encoder(backend="onnx-int8", cache_size=0)
    folder = work_dir / "dynamic-export"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(exported_model(encoder.path), folder, ignore=shutil.ignore_patterns("*int8*"))
    target = "avx512_vnni" if "avx512_vnni" in Path("/proc/cpuinfo").read_text() else "avx2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fp32 = SentenceTransformer(str(folder), backend="onnx", device="cpu")
        export_dynamic_quantized_onnx_model(fp32, target, str(folder))
    file_name = next((folder / "onnx").glob("model_*int8*.onnx")).relative_to(folder)
    # The product's encoder with its model swapped for the dynamic file, under a key of its own
    # so that nothing it encodes can be mistaken for the product's vectors.
    encoder.model = OnnxTextEncoder(folder, str(file_name))
    encoder.key += ":dynamic"
    return encoder


def throughput(encoders: dict[str, Encoder], rounds: int) -> dict[str, dict[str, float]]:
    texts = distinct_messages(MESSAGES[64])
    best: dict[str, dict[str, float]] = {name: {} for name in encoders}
    for _ in range(rounds):
        for name, encoder in encoders.items():
            for batch in BATCHES:
                per_s = encode_rate(encoder, texts[: MESSAGES[batch]], batch)
                key = f"batch {batch}"
                best[name][key] = max(best[name].get(key, 0.0), round(per_s, 1))
    return best


def trained_model(
    work_dir: Path, name: str, encoder: Encoder
) -> tuple[SuggestionModel, list[str], list[str]]:
    """A fresh generation 0 trained with ``encoder``; the benchmark messages and real replies."""
    data_dir = work_dir / name.replace(" ", "-")
    shutil.rmtree(data_dir, ignore_errors=True)
    settings = load_settings(
        {"data_dir": str(data_dir), "encoder": {"backend": encoder.backend}, **BENCH_DEMO}
    )
    db = Database(settings)
    db.upgrade()
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
    return model, [e.message for e in bench], [e.reply for e in bench]


def batch_dependence(encoder: Encoder, model: SuggestionModel) -> tuple[float, int, int]:
    """(lowest cosine alone vs batched, messages whose top 3 changed, whose top 1 changed)
    over ``PROBES`` distinct (chatterbot) demo messages, each batched with ``NEIGHBOURS`` others.
    ``encoder`` must have no cache (every call runs the model)."""
    distinct = list(dict.fromkeys(example.message for _, example in chatterbot_rows()))
    probes, others = distinct[:PROBES], distinct[PROBES:]
    rng = random.Random(0)
    lowest, top3_changed, top1_changed = 1.0, 0, 0
    for message in probes:
        batch = [*rng.sample(others, NEIGHBOURS), message]
        rng.shuffle(batch)
        at = batch.index(message)
        alone_vectors, batch_vectors = encoder.encode([message]), encoder.encode(batch)
        lowest = min(lowest, float(alone_vectors[0] @ batch_vectors[at]))
        alone = [s.reply_id for s in model.suggest_embedded([message], alone_vectors, k=3)[0]]
        batched = [s.reply_id for s in model.suggest_embedded(batch, batch_vectors, k=3)[at]]
        top3_changed += alone != batched
        top1_changed += alone[:1] != batched[:1]
    return lowest, top3_changed, top1_changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", default="var/bench-backends")
    parser.add_argument("--out", default="docs/figures/encoder_backends.json")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="throughput rounds (best of)")
    args = parser.parse_args()
    work_dir = Path(args.work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    settings = load_settings({})

    encoders: dict[str, Encoder] = {}
    load_seconds: dict[str, float] = {}
    for backend in BACKENDS:
        start = time.perf_counter()
        encoders[backend] = Encoder(backend=backend, cache_size=0)
        load_seconds[backend] = round(time.perf_counter() - start, 2)
    start = time.perf_counter()
    encoders[DYNAMIC] = dynamic_int8_encoder(work_dir)
    load_seconds[DYNAMIC] = round(time.perf_counter() - start, 2)
    speed = throughput(encoders, args.rounds)

    probe = distinct_messages(MESSAGES[64])
    reference = encoders["torch"].encode(probe)
    yardstick = encoders["torch"]
    report: dict[str, BackendRow] = {}
    benchmark: list[str] | None = None
    for name, encoder in encoders.items():
        cosine = (encoder.encode(probe) * reference).sum(axis=1)
        model, bench_messages, gold = trained_model(work_dir, name, encoder)
        # The benchmark split depends only on the data and the seed; check that it did not move.
        assert benchmark in (None, bench_messages), "benchmark split differs between backends"
        benchmark = bench_messages
        top3 = [[s.text for s in row] for row in model.suggest_many(bench_messages, k=3)]
        vectors, gold_vectors = encode_ranked(top3, yardstick), yardstick.encode(gold)
        cosines = gold_cosines(vectors, gold_vectors)
        relevance = relevance_metrics(
            first_match_ranks(top3, gold, cosines, settings.evaluation.match_threshold),
            ks=(3,),
            depth=3,
        )
        lowest, top3_changed, top1_changed = batch_dependence(encoder, model)
        report[name] = BackendRow(
            load_seconds=load_seconds[name],
            per_second=speed[name],
            cosine_min=float(cosine.min()),
            cosine_mean=float(cosine.mean()),
            alone_vs_batched_cosine_min=lowest,
            top3_changed=top3_changed,
            top1_changed=top1_changed,
            accuracy3=relevance["accuracy@3"],
            mrr3=relevance["mrr@3"],
            similarity3=float(best_similarity(vectors, gold_vectors, 3).mean()),
        )
    torch_row = report["torch"]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "cpus": os.cpu_count(),
        "benchmark_examples": len(benchmark or []),
        "batch_dependence": {"messages": PROBES, "batch": NEIGHBOURS + 1},
        "throughput_rounds": args.rounds,
        "int8_file": INT8_FILE,
    }
    out.write_text(json.dumps({**summary, **{k: asdict(v) for k, v in report.items()}}, indent=2))
    print(f"benchmark: {summary['benchmark_examples']} examples; cpus: {summary['cpus']}")
    print(
        "| backend | batch 64 | batch 4 | batch 1 | x PyTorch at 64 / 4 / 1 | cosine to PyTorch "
        f"min / mean | alone vs batched: cosine min | top-3 / top-1 changed (of {PROBES}) "
        "| accuracy@3 | similarity@3 |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, row in report.items():
        rates = [row.per_second[f"batch {b}"] for b in BATCHES]
        ratios = [
            r / torch_row.per_second[f"batch {b}"] for r, b in zip(rates, BATCHES, strict=True)
        ]
        print(
            f"| {name} | "
            + " | ".join(f"{r:.0f}/s" for r in rates)
            + " | "
            + " / ".join(f"{x:.2f}x" for x in ratios)
            + f" | {row.cosine_min:.4f} / {row.cosine_mean:.4f} "
            f"| {row.alone_vs_batched_cosine_min:.6f} | {row.top3_changed} / {row.top1_changed} "
            f"| {row.accuracy3:.3f} | {row.similarity3:.3f} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
