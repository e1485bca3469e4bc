"""Read what the demo model suggests for 40 everyday messages, to judge them as a person would.

Usage:
    .venv/bin/python bench/suggestions_read.py --data-dir /tmp/rg-read --out docs/figures/x.json

Run as a file (not ``-m``) so that it can read a model of an older commit too: with
``PYTHONPATH=OLD_TREE`` every project module comes from that tree (bench/served_before.py says
why). The data folder is filled and its clean baseline trained as ``make run`` does
(bench.common.prepare), or reused when it holds one already. For each message it prints the
suggestions a client is shown (the model's triggering decides: before the intents work only
the first suggestion had to reach the threshold, after it every one does), with each
suggestion's score and, where the model has them, its intent, tone and source.

The messages are the issue's 40 kinds of everyday message (plans, thanks, good news, bad news,
greetings, jokes, idioms that only sound sad); they are not the tone detector's evaluation set
(tests/data/tone_messages.tsv) nor its prototypes (models/tone.py).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
if os.environ.get("PYTHONPATH"):
    # An older tree on PYTHONPATH comes first (see the module docstring).
    sys.path.insert(0, os.environ["PYTHONPATH"].split(os.pathsep)[0])

from bench.common import prepare
from models.encoder import Encoder
from worker.settings import load_settings

SHOWN = 3

MESSAGES = (
    "are we still on for lunch tomorrow?",
    "want to grab dinner tonight?",
    "can you pick up some milk on the way home?",
    "running 10 minutes late, sorry",
    "what time should we meet?",
    "where are you?",
    "thanks so much for your help yesterday",
    "thank you for the birthday present!",
    "I got the job!!!",
    "we're getting married!",
    "I passed my driving test",
    "my grandma passed away this morning",
    "I've been diagnosed with cancer",
    "I got laid off today",
    "my girlfriend broke up with me",
    "my flight got cancelled",
    "I'm in the hospital, I broke my leg",
    "our dog died last night",
    "I failed my exam",
    "I'm feeling really anxious about tomorrow",
    "good morning!",
    "hey, how are you?",
    "good night, sleep well",
    "happy birthday!!",
    "I love this song",
    "did you see the game last night?",
    "why did the chicken cross the road? to get to the other side",
    "haha that's hilarious",
    "do you want to come to the party on saturday?",
    "can you call me when you're free?",
    "I'm sorry about yesterday",
    "did you finish the report?",
    "I'm so bored",
    "what are you doing this weekend?",
    "I miss you",
    "this traffic is killing me",
    "I'm dying to see that movie",
    "my phone died, that's why I didn't answer",
    "see you soon!",
    "have a safe trip",
)


def shown(model: Any, suggestions: list[Any]) -> list[Any]:
    """What a client is shown without ``force``: the model's own triggering rule."""
    triggering = model.triggering
    if hasattr(triggering, "shown"):
        return list(triggering.shown(suggestions))
    return suggestions if triggering.answers(suggestions) else []


def silence(model: Any, suggestions: list[Any]) -> str | None:
    """Why a client is shown nothing (models.suggester.Triggering.silence), None when it is
    shown something or the model's code predates the method."""
    triggering = model.triggering
    return triggering.silence(suggestions) if hasattr(triggering, "silence") else None


def read(model: Any) -> list[dict[str, Any]]:
    """Each message with every suggestion of the top three, whether it is shown, and why
    nothing is shown when nothing is."""
    rows = []
    bank = model.bank
    for message, suggestions in zip(
        MESSAGES, model.suggest_many(list(MESSAGES), k=SHOWN), strict=True
    ):
        visible = {s.reply_id for s in shown(model, suggestions)}
        rows.append(
            {
                "message": message,
                "threshold": model.triggering.threshold,
                "silent": silence(model, suggestions),
                "suggestions": [
                    {
                        "text": s.text,
                        "score": s.score,
                        "shown": s.reply_id in visible,
                        "intent": _field(bank, "intents", s.reply_id),
                        "tone": _field(bank, "tones", s.reply_id),
                        "source": _field(bank, "sources", s.reply_id),
                    }
                    for s in suggestions
                ],
            }
        )
    return rows


def _field(bank: Any, name: str, reply_id: int) -> str | None:
    values = getattr(bank, name, None)
    return None if values is None else str(values[reply_id])


def table(before: Path, after: Path) -> str:
    """A markdown table of what a client is shown for each message, before and after."""

    def cell(row: dict[str, Any]) -> str:
        texts = [s["text"] for s in row["suggestions"] if s["shown"]]
        # Files written before "silent" was recorded say only that nothing was shown.
        said = f"silent: {row['silent']}" if row.get("silent") else "(nothing)"
        return " / ".join(t.replace("|", "/") for t in texts) or said

    old = json.loads(before.read_text())["rows"]
    new = json.loads(after.read_text())["rows"]
    lines = ["| message | before | after |", "|---|---|---|"]
    for a, b in zip(old, new, strict=True):
        lines.append(f"| {a['message']} | {cell(a)} | {cell(b)} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument(
        "--compare", type=Path, nargs=2, metavar=("BEFORE", "AFTER"), help="print a table"
    )
    args = parser.parse_args()
    if args.compare:
        print(table(*args.compare))
        return
    if args.data_dir is None or args.out is None:
        parser.error("--data-dir and --out are needed to read a model")
    settings = load_settings({"data_dir": str(args.data_dir)})
    encoder = Encoder.from_config(settings.encoder, settings.embedding_cache)
    data = prepare("demo", args.data_dir, encoder)
    rows = read(data.model)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"bank_size": len(data.model.bank), "rows": rows}, indent=1))
    for row in rows:
        texts = [
            f"{s['text']} ({s['score']:.2f}{', ' + s['intent'] if s['intent'] else ''})"
            + ("" if s["shown"] else " [hidden]")
            for s in row["suggestions"]
        ]
        if row["silent"]:
            # Hidden candidates alone do not say why none is shown.
            texts.append(f"silent: {row['silent']}")
        print(f"{row['message'][:48]:<48} -> {' | '.join(texts) or '-'}")


if __name__ == "__main__":
    main()
