"""Precision and recall of the sensitive-message detector (models.tone) on labelled everyday
messages: the lexicon, the encoder rule at several settings, their union, and VADER.

Usage:
    .venv/bin/python -m bench.tone_detector [--out docs/figures/tone_detector.json]
    PYTHONPATH=/path/to/vaderSentiment .venv/bin/python -m bench.tone_detector  # with VADER

The messages are ``tests/data/tone_messages.tsv`` (162, 75 sensitive); the encoder is the
served one (the settings' backend, onnx-int8 by default). VADER (Hutto and Gilbert 2014,
the ``vaderSentiment`` package, a lexicon shipped in the package) is measured when it can be
imported: a message is sensitive when its compound score is at most a cut-off. It is not a
dependency of the project; docs/benchmarks.md ("Tone") says why.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from models.encoder import Encoder
from models.tone import ToneConfig
from models.tone import ToneDetector
from worker.settings import load_settings

MESSAGES = Path(__file__).resolve().parent.parent / "tests" / "data" / "tone_messages.tsv"
FLOORS = (0.35, 0.4, 0.45, 0.5, 0.55)
MARGINS = (0.0, 0.05, 0.1)
VADER_CUTS = (-0.2, -0.4, -0.6)


def read_messages(path: Path = MESSAGES) -> list[tuple[bool, str, str]]:
    """The (sensitive, kind, message) rows."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, kind, message = line.split("\t")
        rows.append((label == "1", kind, message))
    return rows


def figures(predicted: np.ndarray, gold: np.ndarray) -> dict[str, Any]:
    """Precision, recall and the counts behind them."""
    tp = int((predicted & gold).sum())
    fp = int((predicted & ~gold).sum())
    fn = int((~predicted & gold).sum())
    return {
        "precision": round(tp / max(tp + fp, 1), 3),
        "recall": round(tp / max(tp + fn, 1), 3),
        "false_positives": fp,
        "false_negatives": fn,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/tone_detector.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    rows = read_messages()
    gold = np.asarray([s for s, _, _ in rows], dtype=bool)
    texts = [m for _, _, m in rows]
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"data_dir": tmp})
        encoder = Encoder.from_config(settings.encoder, settings.embedding_cache)
        embeddings = encoder.encode(texts)
        detectors = {
            "lexicon": ToneDetector(encoder, ToneConfig(use_encoder=False)),
            "default (lexicon or encoder)": ToneDetector(encoder),
        }
        for veto in (0.05, 0.1, 0.2, 0.3):
            detectors[f"default, veto {veto}"] = ToneDetector(encoder, ToneConfig(veto=veto))
        detectors["default, no veto"] = ToneDetector(encoder, ToneConfig(veto=None))
        for floor in FLOORS:
            for margin in MARGINS:
                name = f"encoder floor {floor} margin {margin}"
                detectors[name] = ToneDetector(
                    encoder, ToneConfig(floor=floor, margin=margin, use_lexicon=False)
                )
                detectors[f"lexicon or {name}"] = ToneDetector(
                    encoder, ToneConfig(floor=floor, margin=margin)
                )
    results: dict[str, Any] = {}
    for name, detector in detectors.items():
        results[name] = figures(detector.sensitive_many(texts, embeddings), gold)
    try:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer
    except ImportError:
        print("VADER not importable: not measured")
    else:
        analyser = SentimentIntensityAnalyzer()
        compound = np.asarray([analyser.polarity_scores(t)["compound"] for t in texts])
        lexicon = detectors["lexicon"].sensitive_many(texts, embeddings)
        for cut in VADER_CUTS:
            vader = compound <= cut
            results[f"vader compound <= {cut}"] = figures(vader, gold)
            results[f"lexicon or vader compound <= {cut}"] = figures(lexicon | vader, gold)
    default = detectors["default (lexicon or encoder)"]
    results["default_errors"] = [
        {
            "message": m,
            "kind": kind,
            "sensitive": bool(s),
            "lexicon": d.lexicon,
            "distress": round(d.distress, 3),
            "everyday": round(d.everyday, 3),
        }
        for (s, kind, m), e in zip(rows, embeddings, strict=True)
        if (d := default.detect(m, e)).sensitive != s
    ]
    start = time.perf_counter()
    for _ in range(20):
        default.sensitive_many(texts, embeddings)
    per_message = (time.perf_counter() - start) / (20 * len(texts))
    results["messages"] = {
        "all": len(rows),
        "sensitive": int(gold.sum()),
        "microseconds_per_message": round(per_message * 1e6, 1),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    for name, value in results.items():
        if name != "default_errors":
            print(f"{name:<48} {value}")
    for error in results["default_errors"]:
        print("ERROR", error)


if __name__ == "__main__":
    main()
