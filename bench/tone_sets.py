"""The served tone detector against the nearest-prototype rule, on every labelled set.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.tone_sets [--data-dir DIR] \\
        [--out docs/figures/tone_sets.json]

The production model of ``--data-dir`` (the default demo and its baseline trained there when
it has none, as bench.everyday does) serves with its tone classifier (models.tone); the rule
is models.tone's nearest-prototype rule, what a model without one serves with. Precision and
recall of each (the lexicon included) on tests/data/tone_messages.tsv and the everyday
benchmark's sensitive labels (where the classifier's settings were chosen) and on
tests/data/tone_heldout.tsv (written apart from everything).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from bench.common import prepare
from models.encoder import Encoder
from models.tone import ToneDetector
from worker.evaluation import everyday_benchmark

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


def labelled(path: Path) -> tuple[list[str], np.ndarray]:
    """The messages of a ``label<TAB>kind<TAB>message`` file and whether each is sensitive."""
    rows = [
        line.split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    return [r[2] for r in rows], np.asarray([r[0] == "1" for r in rows], dtype=bool)


def measure(data_dir: Path) -> dict[str, Any]:
    """Precision, recall and counts per detector and set; a JSON-safe dict."""
    encoder = Encoder()
    model = prepare("demo", data_dir, encoder).model
    benchmark = everyday_benchmark()
    sets = {
        "tone_messages": labelled(DATA / "tone_messages.tsv"),
        "tone_heldout": labelled(DATA / "tone_heldout.tsv"),
        "everyday": (
            benchmark.texts(),
            np.asarray([m.sensitive for m in benchmark.messages], dtype=bool),
        ),
    }
    detectors = {"prototype_rule": ToneDetector(encoder), "classifier": model.tone}
    figures: dict[str, Any] = {}
    for name, detector in detectors.items():
        figures[name] = {}
        for set_name, (texts, labels) in sets.items():
            found = detector.sensitive_many(texts, encoder.encode(texts))
            hits = int((found & labels).sum())
            figures[name][set_name] = {
                "messages": len(texts),
                "sensitive": int(labels.sum()),
                "precision": round(hits / max(int(found.sum()), 1), 3),
                "recall": round(hits / max(int(labels.sum()), 1), 3),
            }
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/figures/tone_sets.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        figures = measure(args.data_dir or Path(scratch))
    for name, sets in figures.items():
        cells = [f"{s} P {f['precision']:.3f} R {f['recall']:.3f}" for s, f in sets.items()]
        print(f"{name:15s} " + " | ".join(cells))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
