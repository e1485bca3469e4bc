"""The intent signal's weight, chosen on the catalogue's own prompts (never the everyday
benchmark, which stays held out to measure the result).

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.intent_weight [--data-dir DIR] \\
        [--out docs/figures/intent_weight.json]

The production model of ``--data-dir`` (the default demo and its baseline are trained there
when it has none, as bench.everyday does) is asked, for each prompt of the catalogue, for
three suggestions, by a model whose prompts leave out the prompt's fold (5 folds by the
prompt's text, so a prompt never matches itself or its copies under other intents). A
prompt is answered well when a suggestion is of an intent that lists it (hit@3, also for
the bad news apart: prompts listed only by sympathetic intents); bad news is answered badly
when any suggestion is of another tone. Both for each intent weight of WEIGHTS, the other weights the model's own;
triggering is not applied (every list is three long).
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from bench.common import prepare
from models.catalogue import Tone
from models.encoder import Encoder
from models.reply_rules import surface_key

ROOT = Path(__file__).resolve().parent.parent
WEIGHTS = (0.0, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0)
FOLDS = 5


def _fold(text: str) -> int:
    return hashlib.sha256(surface_key(text).encode()).digest()[0] % FOLDS


def measure(data_dir: Path) -> dict[str, Any]:
    """hit@3 and the bad-news share with another tone, per intent weight (see the module
    docstring); a JSON-safe dict."""
    encoder = Encoder()
    model = prepare("demo", data_dir, encoder).model
    prompts = model.prompts
    gold: dict[str, set[str]] = {}
    for intent, text in zip(prompts.intents, prompts.texts, strict=True):
        gold.setdefault(surface_key(text), set()).add(intent)
    tone = dict(zip(model.bank.intents, model.bank.tones, strict=True))
    texts = sorted({surface_key(t): t for t in prompts.texts}.values())
    base = encoder.encode(texts)
    hits = {w: 0 for w in WEIGHTS}
    sad_hits = {w: 0 for w in WEIGHTS}
    harsh = {w: 0 for w in WEIGHTS}
    sad = 0
    for fold in tqdm(range(FOLDS), desc="folds"):
        keep = np.asarray([_fold(t) != fold for t in prompts.texts], dtype=bool)
        rows = [i for i, t in enumerate(texts) if _fold(t) == fold]
        trained = model.replaced(prompts=prompts.subset(keep))
        asked = [texts[i] for i in rows]
        bad_news = [
            all(tone.get(i) == Tone.SYMPATHETIC.value for i in gold[surface_key(t)]) for t in asked
        ]
        sad += sum(bad_news)
        for w in WEIGHTS:
            weights = dataclasses.replace(model.weights, intent=w)
            lists = trained.suggest_embedded(asked, base[rows], 3, weights=weights)
            for text, shown, grave in zip(asked, lists, bad_news, strict=True):
                hit = any(s.intent in gold[surface_key(text)] for s in shown)
                hits[w] += hit
                sad_hits[w] += hit and grave
                if grave:
                    harsh[w] += any(tone.get(s.intent) != Tone.SYMPATHETIC.value for s in shown)
    return {
        "prompts": len(texts),
        "bad_news_prompts": sad,
        "model_weights": model.weights.as_dict(),
        "by_weight": [
            {
                "intent_weight": w,
                "hit@3": round(hits[w] / len(texts), 4),
                "bad_news_hit@3": round(sad_hits[w] / max(sad, 1), 4),
                "bad_news_other_tone": round(harsh[w] / max(sad, 1), 4),
            }
            for w in WEIGHTS
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path, default=ROOT / "docs/figures/intent_weight.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        figures = measure(args.data_dir or Path(scratch))
    print(f"{figures['prompts']} prompts ({figures['bad_news_prompts']} of bad news), 5 folds")
    print("intent weight   hit@3   bad news: hit@3, given another tone")
    for row in figures["by_weight"]:
        print(
            f"{row['intent_weight']:13.1f}   {row['hit@3']:.3f}   "
            f"{row['bad_news_hit@3']:.3f}, {row['bad_news_other_tone']:.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
