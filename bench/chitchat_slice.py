"""A second data set for bench.quality and bench.served_set: chitchat conversations the demo
does not use, as a file for ``replyguard data import``.

Usage (from the repository root):
    .venv/bin/python -m bench.chitchat_slice [--pairs 20000] [--out var/chitchat-slice.jsonl]

Whole conversations of the chitchat-dataset package that are not in the demo's selection
(core.demo.demo_rows at the default settings), in the order of a seeded hash of their ids,
until about ``--pairs`` turn pairs; one JSONL row per pair with ``message``, ``reply``,
``niche`` (the conversation's prompt, core.demo.chitchat_niche) and ``provenance: human``.
The import format has no conversation column, so the conversation ids are left behind: an
imported row counts as a source of its own for the response set's support rule.

Why this corpus: it is the only other real two-person chat among the installed packages (the
chatterbot corpus is a chatbot script of one-off answers whose response set holds about a
dozen replies), it shares no conversation with the demo, and its niches keep the corpus'
natural, nearly even sizes instead of the demo's Zipf skew: the same kind of text in a
different shape, four times the demo's size.
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

from core.demo import chitchat_conversations
from core.demo import demo_rows
from worker.settings import load_settings


def slice_rows(pairs: int, seed: int) -> list[dict[str, str]]:
    """About ``pairs`` rows from whole chitchat conversations outside the demo (docstring)."""
    settings = load_settings({"demo_dataset": "chitchat"})
    used = {example.conversation for _, example in demo_rows(settings)}
    rows: list[dict[str, str]] = []
    ranked = sorted(
        (c for c in chitchat_conversations() if f"chitchat:{c.id}" not in used),
        key=lambda c: hashlib.sha256(f"{seed}:import-slice:{c.id}".encode()).digest(),
    )
    for conversation in ranked:
        if len(rows) >= pairs:
            break
        rows.extend(
            {"message": p.message, "reply": p.reply, "niche": p.niche, "provenance": "human"}
            for p in conversation.pairs
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=20_000)
    parser.add_argument("--out", type=Path, default=Path("var/chitchat-slice.jsonl"))
    args = parser.parse_args()
    rows = slice_rows(args.pairs, load_settings().seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows))
    print(f"wrote {len(rows)} pairs to {args.out}")


if __name__ == "__main__":
    main()
