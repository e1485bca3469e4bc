"""Time to load the chitchat demo and train the clean baseline on it, by number of pairs.

Usage:
    .venv/bin/python -m bench.demo_size [--pairs 2000 5000 10000 20000] [--full]
        [--out docs/figures/demo_size.json]
    .venv/bin/python -m bench.demo_size --niches    # the niche table of docs/demo-data.md

For each size, a fresh data folder (an empty embedding cache, as on the first `make run`):
reading the corpus (the JSON file parsed and every pair validated, as a new process does),
loading it into SQLite (examples and incoming traffic), then training generation 0 (the
benchmark split, encoding every text, the adapter, the weights, the evaluation), each timed
on its own. ``--full`` adds the whole corpus (`replyguard data load-demo --full`). These are
the parts of `make run`'s start-up that grow with the demo; the rest (imports, Redis, the
worker, gunicorn) is measured end to end by bench/startup.sh.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

from sqlalchemy import func
from sqlalchemy import select

from core.demo import chitchat_conversations
from core.demo import demo_rows
from core.demo import load_demo
from core.schema import Example
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.settings import load_settings


def run(pairs: int | None, root: Path) -> dict[str, object]:
    """Load and train one size (None: the whole corpus); the seconds of each part."""
    name = "full" if pairs is None else str(pairs)
    overrides: dict[str, object] = {"data_dir": str(root / name), "demo_dataset": "chitchat"}
    if pairs is not None:
        overrides["demo_pairs"] = pairs
    settings = load_settings(overrides)
    ctx = PipelineContext.from_settings(settings)
    chitchat_conversations.cache_clear()
    start = time.perf_counter()
    chitchat_conversations()
    read_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with ctx.db.session() as session:
        report = load_demo(session, settings, full=pairs is None)
    insert_seconds = time.perf_counter() - start
    with ctx.db.session() as session:
        niches = session.scalar(select(func.count(func.distinct(Example.niche))))
    # Loaded before the clock starts: its cost (seconds) does not grow with the demo.
    ctx.encoder.encode(["warm up"])
    start, cpu = time.perf_counter(), time.process_time()
    _, training = train_baseline(ctx, "bench")
    train_seconds = time.perf_counter() - start
    # CPU time of every thread of this process: what the training costs whatever else runs.
    train_cpu_seconds = time.process_time() - cpu
    ctx.db.dispose()
    return {
        "pairs": name,
        "examples": report.added,
        "traffic": report.traffic,
        "niches": niches,
        # Distinct replies the clean baseline can suggest (its response set).
        "bank": training.bank_size,
        "read_seconds": round(read_seconds, 1),
        "insert_seconds": round(insert_seconds, 1),
        "train_seconds": round(train_seconds, 1),
        "train_cpu_seconds": round(train_cpu_seconds, 1),
        "total_seconds": round(read_seconds + insert_seconds + train_seconds, 1),
        # Other work on the machine slows every figure: the 1-minute load average after.
        "load_average": round(os.getloadavg()[0], 1),
    }


def print_niches() -> None:
    """The default demo's niches as the Markdown table rows of docs/demo-data.md."""
    rows = demo_rows(load_settings({"demo_dataset": "chitchat"}))
    sizes = Counter(example.niche for _, example in rows)
    sources: dict[str, set[str | None]] = {}
    for _, example in rows:
        sources.setdefault(example.niche, set()).add(example.conversation)
    corpus = Counter[str]()
    for conversation in chitchat_conversations():
        corpus[conversation.niche] += len(conversation.pairs)
    print("| rank | niche | pairs | conversations | share | in the corpus |")
    print("|---|---|---|---|---|---|")
    for rank, (niche, pairs) in enumerate(sizes.most_common(), start=1):
        print(
            f"| {rank} | {niche} | {pairs:,} | {len(sources[niche]):,} "
            f"| {100 * pairs / len(rows):.1f}% | {corpus[niche]:,} |"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="*", default=[2_000, 5_000, 10_000, 20_000])
    parser.add_argument("--full", action="store_true", help="also the whole corpus")
    parser.add_argument("--out", default="docs/figures/demo_size.json")
    parser.add_argument("--niches", action="store_true", help="print the niche table, then stop")
    args = parser.parse_args()
    if args.niches:
        print_niches()
        return
    sizes: list[int | None] = [*args.pairs, *([None] if args.full else [])]
    results = []
    with tempfile.TemporaryDirectory(prefix="rg-bench-") as tmp:
        for pairs in sizes:
            result = run(pairs, Path(tmp))
            results.append(result)
            print(json.dumps(result), flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(
        "| pairs | examples | traffic | bank | read | insert | train | train CPU | total | load |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        print(
            f"| {r['pairs']} | {r['examples']} | {r['traffic']} | {r['bank']} "
            f"| {r['read_seconds']} s "
            f"| {r['insert_seconds']} s | {r['train_seconds']} s | {r['train_cpu_seconds']} s "
            f"| {r['total_seconds']} s "
            f"| {r['load_average']} |"
        )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
