"""How well mined replies join the catalogue's intents: label propagation against the plain
nearest-seed rule, at several thresholds, on a labelled check.

Usage:
    .venv/bin/python -m bench.intent_propagation [--out docs/figures/intent_propagation.json]

The check is ``tests/data/intent_check.tsv``: mined-style replies ("thx so much", "omw now",
"i'm from texas") each labelled by hand with the intent(s) it belongs to, or ``-`` when no
catalogue intent fits. The seeds are the catalogue's replies that pass rules 1-4 of the
response set; the encoder is the served one (the settings' backend, onnx-int8 by default).

For each method and threshold:

- ``precision``: of the replies given an intent, the share given a right one (a ``-`` reply
  given any intent counts as wrong);
- ``coverage``: of the replies that have an intent, the share given a right one;
- ``kept_apart``: of the ``-`` replies, the share given no intent.

docs/benchmarks.md ("Intent propagation") has the table; the default of
models.intents.PropagationConfig is chosen from it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from models.catalogue import load_catalogue
from models.encoder import Encoder
from models.intents import Propagated
from models.intents import PropagationConfig
from models.intents import nearest_seed
from models.intents import propagate
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.reply_rules import refusal
from worker.settings import load_settings

CHECK = Path(__file__).resolve().parent.parent / "tests" / "data" / "intent_check.tsv"
PROPAGATION_THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
NEAREST_THRESHOLDS = (0.6, 0.65, 0.7, 0.75, 0.8, 0.85)
# Graph settings tried beside the default (each with every threshold).
VARIANTS = {
    "default": {},
    "temperature 0.02": {"temperature": 0.02},
    "temperature 0.1": {"temperature": 0.1},
    "abstain 0.5": {"abstain": 0.5},
    "abstain 0.7": {"abstain": 0.7},
    "edge floor 0.6": {"edge_floor": 0.6},
    "neighbours 5": {"neighbours": 5},
    "damping 0.7": {"damping": 0.7},
}


def read_check(path: Path = CHECK) -> list[tuple[str, frozenset[str]]]:
    """The check's (reply, right intents) rows; an empty set for ``-``."""
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        reply, labels = line.split("\t")
        rows.append((reply, frozenset() if labels == "-" else frozenset(labels.split("|"))))
    return rows


def score(result: Propagated, names: list[str], rows: list[tuple[str, frozenset[str]]]) -> dict:
    """Precision, coverage and kept_apart (module docstring) of one method's decisions."""
    given = right = labelled = right_labelled = none = none_kept = 0
    for joined, (_, gold) in zip(result.labels.tolist(), rows, strict=True):
        name = names[joined] if joined >= 0 else None
        if name is not None:
            given += 1
            right += name in gold
        if gold:
            labelled += 1
            right_labelled += name in gold
        else:
            none += 1
            none_kept += name is None
    return {
        "precision": round(right / max(given, 1), 3),
        "coverage": round(right_labelled / max(labelled, 1), 3),
        "kept_apart": round(none_kept / max(none, 1), 3),
        "given": given,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/intent_propagation.json")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings({"data_dir": tmp})
        encoder = Encoder.from_config(settings.encoder, settings.embedding_cache)
        catalogue = load_catalogue()
        names = list(catalogue.names())
        pairs = [
            (names.index(i.name), r)
            for i, r in catalogue.replies()
            if refusal(r, ResponseSetConfig(), Curation()) is None
        ]
        seeds = encoder.encode([r for _, r in pairs])
        seed_labels = np.asarray([label for label, _ in pairs], dtype=np.int64)
        rows = read_check()
        mined = encoder.encode([r for r, _ in rows])
        encoder_key = encoder.key

    results: dict[str, Any] = {"propagation": {}, "nearest_seed": {}}
    for variant, changes in VARIANTS.items():
        table = results["propagation"][variant] = {}
        for threshold in PROPAGATION_THRESHOLDS:
            config = dataclasses.replace(PropagationConfig(), threshold=threshold, **changes)
            found = propagate(seeds, seed_labels, len(names), mined, config)
            table[str(threshold)] = score(found, names, rows)
    for threshold in NEAREST_THRESHOLDS:
        found = nearest_seed(seeds, seed_labels, mined, threshold)
        results["nearest_seed"][str(threshold)] = score(found, names, rows)

    default = PropagationConfig()
    found = propagate(seeds, seed_labels, len(names), mined, default)
    results["default_decisions"] = [
        {
            "reply": reply,
            "gold": sorted(gold),
            "joined": names[j] if j >= 0 else None,
            "best": names[b] if b >= 0 else None,
            "mass": round(float(m), 3),
        }
        for (reply, gold), j, b, m in zip(
            rows, found.labels.tolist(), found.best.tolist(), found.mass.tolist(), strict=True
        )
    ]
    results["check"] = {
        "rows": len(rows),
        "with_intent": sum(1 for _, g in rows if g),
        "seeds": len(pairs),
        "intents": len(names),
        "encoder": encoder_key,
        "default": dataclasses.asdict(default),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    for variant, table in results["propagation"].items():
        print(f"propagation, {variant}")
        for threshold, figures in table.items():
            print(f"  {threshold:>5}  {figures}")
    print("nearest seed")
    for threshold, figures in results["nearest_seed"].items():
        print(f"  {threshold:>5}  {figures}")


if __name__ == "__main__":
    main()
