"""How well the intent signal recognises the intent a message asks for, three ways, chosen on
the catalogue's prompts alone (the everyday benchmark is reported beside, never chosen on).

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.intent_recognition \\
        [--out docs/figures/intent_recognition.json]

- nearest prompt: an intent scores the cosine of the message to its nearest prompt (the
  signal before 2026-12-08: ``IntentMatch.nearest``);
- prototype: the cosine to the normalised mean of its prompts (Snell et al. 2017,
  "Prototypical Networks for Few-shot Learning": ``IntentMatch.signal``, the signal now);
- logistic regression: scikit-learn's multinomial LogisticRegression (C=10) on the prompts'
  embeddings, its log-probability per intent.

Prompts: 5 folds by the prompt's text (models.reply_rules.surface_key), so a prompt never
meets itself or its copy under another intent; each fold is scored by the other four. A
prompt is recognised when one of the three intents scored highest lists it (hit@3).
Everyday: the benchmark's non-sensitive messages (sensitive ones are answered by the tone
rules, models.tone), with every prompt; recognised when one of the three best intents is
among the message's good ones. Neither uses the rest of the model (no dual encoder, no
triggering): this is the signal alone.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from models.catalogue import load_catalogue
from models.encoder import Encoder
from models.prompts import IntentMatcher
from models.prompts import IntentPrompts
from models.reply_rules import surface_key
from worker.evaluation import everyday_benchmark

ROOT = Path(__file__).resolve().parent.parent
FOLDS = 5
SHOWN = 3

# (prompts of the training folds, (n, d) messages) -> (n, intents) scores, higher better.
Recogniser = Callable[[IntentPrompts, np.ndarray, dict[str, int]], np.ndarray]


def _nearest(prompts: IntentPrompts, messages: np.ndarray, codes: dict[str, int]) -> np.ndarray:
    return IntentMatcher(prompts, codes, len(codes)).match(messages).nearest


def _prototype(prompts: IntentPrompts, messages: np.ndarray, codes: dict[str, int]) -> np.ndarray:
    return IntentMatcher(prompts, codes, len(codes)).match(messages).signal


def _logistic(prompts: IntentPrompts, messages: np.ndarray, codes: dict[str, int]) -> np.ndarray:
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray([codes[i] for i in prompts.intents])
    fitted = LogisticRegression(C=10.0, max_iter=2000).fit(prompts.embeddings, labels)
    out = np.full((len(messages), len(codes)), -np.inf)
    out[:, fitted.classes_] = fitted.predict_log_proba(messages)
    return out


RECOGNISERS: dict[str, Recogniser] = {
    "nearest prompt": _nearest,
    "prototype": _prototype,
    "logistic regression": _logistic,
}


def _hits(scores: np.ndarray, gold: list[set[int]]) -> int:
    best = np.argsort(-scores, axis=1)[:, :SHOWN]
    return sum(bool(set(row.tolist()) & wanted) for row, wanted in zip(best, gold, strict=True))


def measure() -> dict[str, Any]:
    """hit@3 of each recogniser on the prompts (5-fold) and on the everyday benchmark's
    non-sensitive messages; shares in [0, 1]."""
    encoder = Encoder()
    prompts = IntentPrompts.of(load_catalogue(), encoder)
    codes = {name: i for i, name in enumerate(sorted(set(prompts.intents)))}
    keys = [surface_key(t) for t in prompts.texts]
    gold_of: dict[str, set[int]] = {}
    for key, intent in zip(keys, prompts.intents, strict=True):
        gold_of.setdefault(key, set()).add(codes[intent])
    fold = np.asarray([hashlib.sha256(k.encode()).digest()[0] % FOLDS for k in keys])
    # One row per distinct prompt text in each fold: a text of two intents is asked once.
    first = {k: i for i, k in reversed(list(enumerate(keys)))}
    asked = np.asarray(sorted(first.values()))
    everyday = [m for m in everyday_benchmark().messages if not m.sensitive]
    messages = encoder.encode([m.text for m in everyday])
    everyday_gold = [{codes[g] for g in m.good if g in codes} for m in everyday]
    rows = []
    for name, recognise in RECOGNISERS.items():
        hits = 0
        for k in range(FOLDS):
            rows_k = asked[fold[asked] == k]
            scores = recognise(prompts.subset(fold != k), prompts.embeddings[rows_k], codes)
            hits += _hits(scores, [gold_of[keys[i]] for i in rows_k])
        found = _hits(recognise(prompts, messages, codes), everyday_gold)
        rows.append(
            {
                "recogniser": name,
                "prompts_hit@3": round(hits / len(asked), 4),
                "everyday_hit@3": round(found / len(everyday), 4),
            }
        )
    return {
        "prompts": len(asked),
        "intents": len(codes),
        "everyday_messages": len(everyday),
        "folds": FOLDS,
        "by_recogniser": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "figures" / "intent_recognition.json"
    )
    args = parser.parse_args()
    figures = measure()
    print(
        f"{figures['prompts']} distinct prompts of {figures['intents']} intents, "
        f"{figures['folds']} folds; {figures['everyday_messages']} everyday messages"
    )
    print("recogniser            prompts hit@3   everyday hit@3 (reported, not chosen on)")
    for row in figures["by_recogniser"]:
        print(
            f"{row['recogniser']:20s}  {row['prompts_hit@3']:.3f}           "
            f"{row['everyday_hit@3']:.3f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
