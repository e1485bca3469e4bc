"""The "before" side of bench/served_set.py: run by it under the code of an older commit.

Usage (bench.served_set runs this for you):
    PYTHONPATH=/work/wt/before .venv/bin/python bench/served_before.py \
        --examples EXAMPLES.jsonl --data-dir DIR --out OUT.json

Run as a file, never as ``-m bench...``: with ``-m`` the working directory (this tree) would
come first on ``sys.path`` and shadow the older code on ``PYTHONPATH``. It therefore imports
nothing from this tree, only modules that existed before the response set (commit a4ada3f):
it stores the given examples (the rows of a bench.served_set data folder, in id order, each
with its source and conversation) into a new data folder, trains generation 0 there with
that code's ``worker.baseline``, and writes what that model serves for each benchmark
message (its top three), its bank and the benchmark rows, for bench.served_set to score.
"""

from __future__ import annotations

import argparse
import itertools
import json
from pathlib import Path

from core.db import Database
from core.ingest import ExampleIn
from core.ingest import add_examples
from core.provenance import Provenance
from models.artifact import load_model
from models.registry import artifact_dir
from models.registry import production
from worker.baseline import train_baseline
from worker.context import PipelineContext
from worker.data import example_pools
from worker.settings import load_settings

SHOWN = 3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()

    settings = load_settings({"data_dir": str(args.data_dir)})
    db = Database(settings)
    db.upgrade()
    ctx = PipelineContext(settings, db, show_progress=True)
    with db.session() as session:
        if production(session) is None:
            rows = [json.loads(line) for line in args.examples.read_text().splitlines()]
            # Consecutive runs of one source, in the order given: the same ids' order.
            for source, group in itertools.groupby(rows, key=lambda r: r["source"]):
                add_examples(
                    session,
                    [
                        ExampleIn(
                            r["message"],
                            r["reply"],
                            r["niche"],
                            Provenance(r["provenance"]),
                            r["conversation"],
                        )
                        for r in group
                    ],
                    source=source,
                )
    with db.session() as session:
        if production(session) is None:
            train_baseline(ctx, "bench")
    with db.session() as session:
        version = production(session)
        assert version is not None
        model, _ = load_model(artifact_dir(settings, version), ctx.encoder, version.checksum)
        benchmark = example_pools(session).benchmark
    messages = [r.message for r in benchmark]
    suggestions = model.suggest_many(messages, k=SHOWN)
    args.out.write_text(
        json.dumps(
            {
                "model": version.version,
                "bank": list(model.bank.texts),
                "benchmark": [
                    {
                        "message": r.message,
                        "reply": r.reply,
                        "suggestions": [s.text for s in row],
                        "scores": [s.score for s in row],
                    }
                    for r, row in zip(benchmark, suggestions, strict=True)
                ],
            }
        )
    )


if __name__ == "__main__":
    main()
