"""What people would tap: a data folder's production model on the everyday benchmark.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.everyday [--data-dir DIR] \\
        [--out docs/figures/everyday.json] [--examples N]

Loads the production model of ``--data-dir`` (with no model there: the default demo, chitchat
10,000 pairs, loaded and its clean baseline trained into that folder, as ``make run`` does;
with no ``--data-dir``: into a temporary folder), asks it for three suggestions for each of
the 464 labelled messages of ``safeguards/everyday.yaml``, applies its triggering (what a
client is shown without ``force``) and prints tappable@3 and inappropriate@3 overall and on
the sensitive messages apart, coverage, the distinct intents and texts served, and examples
of inappropriate suggestions; writes them, with every shown list, to ``--out``.

The metrics are safeguards.everyday's (tappable@3 after Kannan et al. 2016, "Smart Reply";
no suggestion on a sensitive topic, as ML Kit's Smart Reply); the model and its triggering
are the served ones, loaded from the registry (models.artifact.load_model).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import prepare
from models.encoder import Encoder
from safeguards.everyday import SHOWN
from safeguards.everyday import score_lists
from safeguards.everyday import shown_lists
from worker.evaluation import everyday_benchmark

ROOT = Path(__file__).resolve().parent.parent


def measure(data_dir: Path, examples: int) -> dict[str, Any]:
    """The figures of ``data_dir``'s production model (trained first when there is none).

    Args:
        data_dir: a data folder; an empty one gets the default demo and its baseline.
        examples: inappropriate suggestions to keep, sensitive ones and others each.

    Returns:
        A JSON-safe dict: the model, the metrics, the counts, examples and every list shown.
    """
    encoder = Encoder()
    data = prepare("demo", data_dir, encoder)
    benchmark = everyday_benchmark()
    start = time.perf_counter()
    rows = data.model.suggest_many(benchmark.texts(), k=SHOWN)
    seconds = time.perf_counter() - start
    shown = shown_lists(data.model, benchmark, rows)
    scores = score_lists(benchmark, shown)
    manifest = data.manifest
    return {
        "model": {
            "data_dir": str(data_dir),
            "version": manifest.get("version"),
            "generation": manifest.get("generation"),
            "bank_size": len(data.model.bank.texts),
            "triggering": data.model.triggering.as_dict(),
        },
        "benchmark": {
            "messages": len(benchmark),
            "situations": len(benchmark.situations()),
            "sensitive": len(benchmark.sensitive),
            "fingerprint": benchmark.fingerprint,
        },
        "metrics": scores.values(),
        "counts": scores.summary(examples),
        "suggest_seconds": round(seconds, 2),
        "lists": [
            {
                "message": message.text,
                "situation": message.situation,
                "sensitive": message.sensitive,
                "shown": [text for text, _ in row],
                "raw": [s.text for s in raw],
            }
            for message, row, raw in zip(benchmark.messages, shown, rows, strict=True)
        ],
    }


def report(figures: dict[str, Any]) -> str:
    """The figures as the lines the script prints."""
    m, c = figures["metrics"], figures["counts"]
    lines = [
        f"model {figures['model']['version']} (generation {figures['model']['generation']}), "
        f"{figures['model']['bank_size']} replies in its response set",
        f"everyday benchmark: {c['messages']} messages, {figures['benchmark']['situations']} "
        f"situations, {c['sensitive']} sensitive",
        f"answered           {c['answered']:4d} of {c['messages']}  ({m['everyday_coverage']:.3f})",
        f"tappable@3         {c['tappable']:4d} of {c['messages']}  ({m['tappable@3']:.3f})",
        f"inappropriate@3    {c['inappropriate']:4d} of {c['messages']}  "
        f"({m['inappropriate@3']:.3f})",
        f"sensitive answered {c['sensitive_answered']:4d} of {c['sensitive']}",
        f"sensitive tappable@3      {c['sensitive_tappable']:4d} of {c['sensitive']}  "
        f"({m['sensitive_tappable@3']:.3f})",
        f"sensitive inappropriate@3 {c['sensitive_inappropriate']:4d} of {c['sensitive']}  "
        f"({m['sensitive_inappropriate@3']:.3f})",
        f"suggestions shown {c['shown']}, with no intent {c['without_intent']}; "
        f"distinct intents {m['everyday_intents']:.0f}, distinct texts {m['everyday_distinct']:.0f}",
        "inappropriate on sensitive messages, e.g.:",
    ]
    lines += [
        f"  {e['message']!r}: {e['suggestion']!r} ({e['intent']})" for e in c["sensitive_examples"]
    ]
    lines.append("inappropriate on other messages, e.g.:")
    lines += [
        f"  {e['message']!r}: {e['suggestion']!r} ({e['intent']})" for e in c["other_examples"]
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "figures" / "everyday.json")
    parser.add_argument("--examples", type=int, default=10)
    args = parser.parse_args()
    if args.data_dir is None:
        with tempfile.TemporaryDirectory(prefix="everyday-") as folder:
            figures = measure(Path(folder), args.examples)
    else:
        figures = measure(args.data_dir, args.examples)
    print(report(figures))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=1, ensure_ascii=False) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
