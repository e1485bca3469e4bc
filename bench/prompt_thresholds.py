"""The two thresholds on the intent signal, measured on the catalogue's prompts alone (nothing
here reads the everyday benchmark):

1. ``models.prompts.INTENT_MATCH_FLOOR``: how close the nearest prompt must be for a message
   to match any intent. Each prompt's nearest *other* prompt (the same text under another
   intent left out), as percentiles: the share of chat messages written for the catalogue
   that a floor would leave without an intent; beside it, the nearest prompt of keyboard
   mash and other text no intent answers.
2. ``models.tone.SPECIFIC_SYMPATHY_MATCH``: how close a sensitive message must be to an
   intent's prompts before a sympathetic intent for one kind of news answers it. For each
   sympathetic intent that is not ``general`` and each threshold: how many prompts of the
   *other* sympathetic intents come at least that close to one of its prompts (a false
   match: "my dad had a stroke" close enough to a death for "Sorry for your loss"), and how
   many of its own prompts do, each left out of its own intent's set (the intent's prompts
   are written to differ, so this share is small: the threshold is a guard, and the general
   intents answer the rest). A prompt written under several intents counts as their own for
   each.

Usage:
    HF_HUB_OFFLINE=1 .venv/bin/python -m bench.prompt_thresholds \\
        [--out docs/figures/prompt_thresholds.json]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from models.catalogue import Tone
from models.catalogue import load_catalogue
from models.encoder import Encoder
from models.prompts import IntentPrompts

THRESHOLDS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8)
PERCENTILES = (1, 2, 3, 5, 10, 50)
# Text no intent answers: keyboard mash, a formula, code.
UNANSWERED = (
    "xq zvb wplk qqq jjjx",
    "asdfghjkl",
    "qwpoeiruty zmxncb",
    "jjjjjjjjj kkkk",
    "fjdksla;fjdk",
    "lkjh lkjh lkjh",
    "zxcv bnm,",
    "hgfjdks lqpwoei",
    "ooo ppp qqq rrr",
    "aaaaaaa",
    "the derivative of x squared is two x",
    "SELECT * FROM users",
)


def measure() -> dict[str, Any]:
    """The nearest-prompt percentiles and the unanswered texts' nearest prompts (cosines),
    and per threshold the false-match rate and the own-prompt rate (shares in [0, 1]) and
    the count of false matches over every non-general sympathetic intent."""
    encoder = Encoder()
    catalogue = load_catalogue()
    prompts = IntentPrompts.of(catalogue, encoder)
    intents = np.asarray(prompts.intents)
    texts = np.asarray(prompts.texts)
    sympathetic = {i.name for i in catalogue.intents if i.tone == Tone.SYMPATHETIC}
    specific = sorted(sympathetic - set(prompts.general))
    similarity = prompts.embeddings @ prompts.embeddings.T
    # A prompt is never its own match, nor the same text written under another intent.
    similarity[texts[:, None] == texts[None, :]] = -1.0
    nearest = similarity.max(axis=1)
    unanswered = (encoder.encode(list(UNANSWERED)) @ prompts.embeddings.T).max(axis=1)
    rows = np.flatnonzero(np.isin(intents, sorted(sympathetic)))
    owners = {text: set(intents[texts == text]) for text in set(texts[rows])}
    # (specific intents, rows): each prompt's closeness to each intent's prompts.
    closeness = np.stack([similarity[rows][:, intents == name].max(1) for name in specific])
    own = np.asarray([[name in owners[texts[r]] for r in rows] for name in specific])
    sympathy = []
    for threshold in THRESHOLDS:
        hit = closeness >= threshold
        sympathy.append(
            {
                "threshold": threshold,
                "false_match_rate": round(float(hit[~own].mean()), 4),
                "false_matches": int(hit[~own].sum()),
                "own_prompt_rate": round(float(hit[own].mean()), 4),
            }
        )
    return {
        "nearest_prompt_percentiles": {
            str(p): round(float(np.percentile(nearest, p)), 3) for p in PERCENTILES
        },
        "unanswered_nearest_prompt": {
            text: round(float(value), 3) for text, value in zip(UNANSWERED, unanswered, strict=True)
        },
        "specific_sympathy": sympathy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/figures/prompt_thresholds.json"))
    args = parser.parse_args()
    figures = measure()
    print("each prompt's nearest other prompt, percentiles (cosine):")
    for p, value in figures["nearest_prompt_percentiles"].items():
        print(f"  {p:>3}%  {value:.3f}")
    print("the nearest prompt of text no intent answers:")
    for text, value in figures["unanswered_nearest_prompt"].items():
        print(f"  {value:.3f}  {text}")
    print(f"{'threshold':>9}  {'false-match rate':>16}  {'false matches':>13}  {'own prompts':>11}")
    for row in figures["specific_sympathy"]:
        print(
            f"{row['threshold']:>9.2f}  {row['false_match_rate']:>16.4f}  "
            f"{row['false_matches']:>13}  {row['own_prompt_rate']:>11.4f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
