"""Why the dual encoder ranks real replies worse than the plain encoder: 1-of-100 against
adapter training epochs.

Usage (from the repository root, after bench.quality has trained its data folders):
    .venv/bin/python -m bench.adapter_epochs [--data FILE.jsonl] [--data-dir var/bench-quality]

For the demo data and, with ``--data``, the imported file (the data folders of bench.quality),
trains the message adapter (models.adapter_training.train_adapter, the settings' learning rate, batch
size, temperature and seed) on the training pairs for 0 (the plain encoder), 1, 2, 5, 10 and
30 epochs (30: the default, ``adapter_epochs``), and measures the dual encoder's 1-of-100
ranking accuracy (core.ranking.one_of_100) on the benchmark split and on as many training
pairs: a gap between the two that grows with the epochs is the adapter learning the
training pairs rather than how people reply.

Writes docs/figures/adapter_epochs.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.common import BenchData
from bench.common import prepare
from core.ranking import one_of_100
from models.adapter_training import train_adapter
from models.encoder import Encoder
from models.reply_rules import surface_key
from worker.settings import load_settings

EPOCHS = (0, 1, 2, 5, 10, 30)


def epochs_curve(data: BenchData, encoder: Encoder) -> list[dict[str, Any]]:
    """1-of-100 on the benchmark and on training pairs after each count of epochs."""
    train_messages = encoder.encode([r.message for r in data.train])
    train_replies = encoder.encode([r.reply for r in data.train])
    bench_messages = encoder.encode([r.message for r in data.benchmark])
    bench_replies = encoder.encode([r.reply for r in data.benchmark])
    # As models.training does: rows with the same reply are not each other's negatives.
    keys: dict[str, int] = {}
    reply_ids = np.array([keys.setdefault(surface_key(r.reply), len(keys)) for r in data.train])
    seed = data.settings.seed
    sample = np.random.default_rng(seed).choice(
        len(data.train), min(len(data.train), len(data.benchmark)), replace=False
    )
    points = []
    for epochs in tqdm(EPOCHS, desc=f"{data.name}: epochs", unit="run"):
        config = dataclasses.replace(data.settings.adapter, epochs=epochs)
        adapter, losses = train_adapter(
            train_messages,
            train_replies,
            reply_ids,
            np.ones(len(data.train), dtype=np.float32),
            config,
        )
        bench_score = one_of_100(adapter.apply(bench_messages) @ bench_replies.T, seed)
        train_score = one_of_100(
            adapter.apply(train_messages[sample]) @ train_replies[sample].T, seed
        )
        points.append(
            {
                "epochs": epochs,
                "final_loss": losses[-1] if losses else None,
                "benchmark_1_of_100": bench_score,
                "training_1_of_100": train_score,
            }
        )
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="var/bench-quality", help="the demo's folder")
    parser.add_argument("--data", type=Path, help="the file bench.quality imported")
    parser.add_argument("--out", default="docs/figures/adapter_epochs.json")
    args = parser.parse_args()

    settings = load_settings({"data_dir": args.data_dir})
    encoder = Encoder.from_config(settings.encoder, settings.embedding_cache)
    folders: dict[str, tuple[Path, Path | None]] = {"demo": (Path(args.data_dir), None)}
    if args.data is not None:
        folders[args.data.name] = (Path(f"{args.data_dir}-{args.data.stem}"), args.data)
    reports: dict[str, dict[str, Any]] = {}
    for name, (folder, data_file) in folders.items():
        data = prepare(name, folder, encoder, data_file)
        reports[name] = {
            "training_pairs": len(data.train),
            "benchmark_pairs": len(data.benchmark),
            "curve": epochs_curve(data, encoder),
        }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"measured": dt.date.today().isoformat(), "data_sets": reports}, indent=2)
    )
    for name, report in reports.items():
        print(f"\n{name}: {report['training_pairs']} training pairs")
        print("| epochs | final loss | 1-of-100, benchmark | 1-of-100, training pairs |")
        print("|---|---|---|---|")
        for p in report["curve"]:
            loss = "" if p["final_loss"] is None else f"{p['final_loss']:.3f}"
            print(
                f"| {p['epochs']} | {loss} | {p['benchmark_1_of_100']:.3f} "
                f"| {p['training_1_of_100']:.3f} |"
            )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
