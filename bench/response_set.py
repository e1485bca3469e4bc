"""Where the response set's defaults come from, measured on the whole chitchat corpus.

Usage:
    .venv/bin/python -m bench.response_set [--out docs/figures/response_set.json]

Reads every consecutive-turn pair of the chitchat-dataset package (131,569 replies in 7,168
conversations) and prints: reply lengths (characters, words) over all replies and over the
replies written in at least 3 conversations; how many distinct replies each support
threshold keeps; and how long building the response set takes (rules and clustering, with
the real encoder), at the default settings.
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from collections import defaultdict
from importlib import resources
from pathlib import Path

import numpy as np

from core.text import normalize
from models.encoder import Encoder
from models.reply_rules import Curation
from models.reply_rules import ResponseSetConfig
from models.response_set import ReplyRows
from models.response_set import build_response_set
from worker.settings import load_settings


def chitchat_pairs() -> list[tuple[str, str]]:
    """(reply, conversation id) of every consecutive turn pair; a turn's lines joined."""
    path = resources.files("chitchat_dataset") / "dataset.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    out = []
    for cid, conversation in data.items():
        turns = [" ".join(u["text"] for u in turn) for turn in conversation["messages"]]
        out.extend((reply, cid) for _, reply in itertools.pairwise(turns))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/figures/response_set.json")
    parser.add_argument("--build-sample", type=int, default=20_000, help="pairs to build from")
    args = parser.parse_args()

    pairs = chitchat_pairs()
    conversations: dict[str, set[str]] = defaultdict(set)
    for reply, cid in pairs:
        conversations[normalize(reply)].add(cid)
    chars = np.array([len(r) for r, _ in pairs])
    words = np.array([len(r.split()) for r, _ in pairs])
    support = {k: len(v) for k, v in conversations.items()}
    supported = [k for k, n in support.items() if n >= 3]
    s_chars = np.array([len(k) for k in supported])
    s_words = np.array([len(k.split()) for k in supported])
    pct = [50, 90, 95, 99]
    report = {
        "pairs": len(pairs),
        "distinct_replies": len(support),
        "all_replies_chars_p50_p90_p95_p99": np.percentile(chars, pct).tolist(),
        "all_replies_words_p50_p90_p95_p99": np.percentile(words, pct).tolist(),
        "supported_3_chars_p50_p90_p95_p99": np.percentile(s_chars, pct).tolist(),
        "supported_3_words_p50_p90_p95_p99": np.percentile(s_words, pct).tolist(),
        "distinct_replies_by_min_support": {
            n: sum(1 for v in support.values() if v >= n) for n in (1, 2, 3, 4, 5)
        },
        "supported_3_within_40_chars_8_words": float(np.mean((s_chars <= 40) & (s_words <= 8))),
    }

    sample = pairs[: args.build_sample]
    settings = load_settings()
    encoder = Encoder.from_config(settings.encoder, settings.embedding_cache)
    replies = [r for r, _ in sample]
    embeddings = encoder.encode(replies, show_progress=True, what="replies of the sample")
    start = time.perf_counter()
    built = build_response_set(
        ReplyRows(
            replies=replies,
            embeddings=embeddings,
            niches=["chat"] * len(sample),
            conversations=[c for _, c in sample],
            human=[True] * len(sample),
        ),
        config=ResponseSetConfig(),
        curation=Curation(),
        encode=encoder.encode,
    )
    report["build"] = {
        "pairs": len(sample),
        "seconds": round(time.perf_counter() - start, 2),
        **built.report.as_dict(),
    }
    print(json.dumps(report, indent=2))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
