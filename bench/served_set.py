"""What the model serves before and after the response set (issue 10), on the same data.

Usage (from the repository root):
    git worktree add /work/wt/before a4ada3f      # once: main before the response set
    .venv/bin/python -m bench.served_set --before /work/wt/before [--data FILE.jsonl]

For the demo data and, with ``--data``, an imported file (the same data folders as
bench.quality, so the "after" model is the one measured there), the examples of the folder are
written out in id order and stored by the older code into a data folder of its own
(bench/served_before.py, run with ``PYTHONPATH`` set to the older tree), which trains its own
generation 0 on them. Both models then suggest their top three for every benchmark message
(the same benchmark: the split is a seeded hash of the same rows, and this is checked), and
this code scores both lists alike: bank size, the share of suggestions over the response
set's length limit, containing personal data (core.content.personal_data), sensitive
(core.content.is_sensitive), multi-line or code, identical to the message (same text up to
case, spacing and punctuation), accuracy@3 and similarity@3 against the real replies.
"After" counts the top three of every message, also those the model would abstain on
(triggering), so its shares are of at least as many suggestions as a client sees; its
coverage is reported beside them.

Writes docs/figures/served_set.json.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select

from bench.common import BenchData
from bench.common import prepare
from core.content import is_sensitive
from core.content import looks_like_code
from core.content import personal_data
from core.db import Database
from core.schema import Example
from models.encoder import Encoder
from models.reply_rules import surface_key
from safeguards.relevance import best_similarity
from safeguards.relevance import encode_ranked
from safeguards.relevance import first_match_ranks
from safeguards.relevance import gold_cosines
from worker.settings import Settings
from worker.settings import load_settings

SHOWN = 3


def export_examples(data: BenchData, path: Path) -> None:
    """Every example of the data folder, in id order, as the JSONL bench/served_before.py
    reads (message, reply, niche, provenance, source, conversation)."""
    db = Database(data.settings)
    with db.session() as session:
        rows = session.scalars(select(Example).order_by(Example.id)).all()
        lines = [
            json.dumps(
                {
                    "message": r.message,
                    "reply": r.reply,
                    "niche": r.niche,
                    "provenance": r.provenance,
                    "source": r.source,
                    "conversation": r.conversation,
                }
            )
            for r in rows
        ]
    db.dispose()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def run_before(
    tree: Path, examples: Path, data_dir: Path, out: Path, cache: Path
) -> dict[str, Any]:
    """Run bench/served_before.py under the code in ``tree``; return what it wrote.

    ``cache`` is this side's embedding cache (Settings.embedding_cache): the same encoder
    gives the same vectors, so the older code does not encode the corpus again."""
    env = {
        **os.environ,
        "PYTHONPATH": str(tree.resolve()),
        "REPLYGUARD_CACHE_DIR": str(cache.parent.resolve()),
    }
    script = Path(__file__).with_name("served_before.py")
    subprocess.run(
        [
            sys.executable,
            str(script),
            "--examples",
            str(examples.resolve()),
            "--data-dir",
            str(data_dir.resolve()),
            "--out",
            str(out.resolve()),
        ],
        env=env,
        cwd=tree,
        check=True,
    )
    result: dict[str, Any] = json.loads(out.read_text())
    return result


def served_metrics(
    messages: Sequence[str],
    gold: Sequence[str],
    suggestions: Sequence[Sequence[str]],
    bank: Sequence[str],
    encoder: Encoder,
    max_chars: int,
    match_threshold: float,
) -> dict[str, float]:
    """Shares of the suggestions (every message's top three, pooled) and of the bank that
    break each rule, and relevance against the real replies (module docstring)."""
    pooled = [(m, s) for m, row in zip(messages, suggestions, strict=True) for s in row]
    texts = [s for _, s in pooled]

    def share(flags: Sequence[bool]) -> float:
        return float(np.mean(flags)) if len(flags) else 0.0

    def plain_fails(text: str) -> bool:
        return "\n" in text.strip() or looks_like_code(text.strip())

    gold_vectors = encoder.encode(list(gold))
    vectors = encode_ranked(suggestions, encoder)
    cosines = gold_cosines(vectors, gold_vectors)
    ranks = first_match_ranks(suggestions, gold, cosines, match_threshold)
    # How much of the relevance is the message said back (the real reply often repeats it).
    no_echo = [
        [s for s in row if surface_key(s) != surface_key(m)]
        for m, row in zip(messages, suggestions, strict=True)
    ]

    return {
        "bank_size": len(bank),
        "suggestions": len(texts),
        "over_length": share([len(t.strip()) > max_chars for t in texts]),
        "personal_data": share([bool(personal_data(t)) for t in texts]),
        "sensitive": share([is_sensitive(t) for t in texts]),
        "multi_line_or_code": share([plain_fails(t) for t in texts]),
        "identical_to_message": share([surface_key(m) == surface_key(s) for m, s in pooled]),
        "accuracy@3": float(np.mean((ranks > 0) & (ranks <= SHOWN))),
        "similarity@3": float(best_similarity(vectors, gold_vectors, SHOWN).mean()),
        "similarity@3_without_echoes": float(
            best_similarity(encode_ranked(no_echo, encoder), gold_vectors, SHOWN).mean()
        ),
        "bank_over_length": share([len(t.strip()) > max_chars for t in bank]),
        "bank_personal_data": share([bool(personal_data(t)) for t in bank]),
    }


def compare(
    data: BenchData, encoder: Encoder, encoder_settings: Settings, tree: Path, work: Path
) -> dict[str, Any]:
    """Before and after metrics of one data set (``encoder_settings``: where ``encoder``
    keeps its embedding cache, shared with the older code)."""
    examples = work / data.name / "examples.jsonl"
    export_examples(data, examples)
    before = run_before(
        tree,
        examples,
        work / data.name / "before",
        work / f"{data.name}.json",
        encoder_settings.embedding_cache,
    )
    messages = [r.message for r in data.benchmark]
    gold = [r.reply for r in data.benchmark]
    same = [(b["message"], b["reply"]) for b in before["benchmark"]] == list(
        zip(messages, gold, strict=True)
    )
    if not same:
        raise RuntimeError(f"{data.name}: the older code chose a different benchmark split")
    settings = data.settings
    model = data.model
    after_rows = model.suggest_many(messages, k=SHOWN)
    args = (encoder, settings.response_set.max_chars, settings.evaluation.match_threshold)
    return {
        "benchmark_examples": len(messages),
        "before": {
            "model": before["model"],
            **served_metrics(
                messages,
                gold,
                [b["suggestions"] for b in before["benchmark"]],
                before["bank"],
                *args,
            ),
            "max_score": max(max(b["scores"], default=0.0) for b in before["benchmark"]),
        },
        "after": {
            "model": data.manifest["version"],
            **served_metrics(
                messages,
                gold,
                [[s.text for s in row] for row in after_rows],
                model.bank.texts,
                *args,
            ),
            "max_score": max((row[0].score for row in after_rows if row), default=0.0),
            "coverage": float(np.mean([model.triggering.answers(row) for row in after_rows])),
        },
    }


METRICS = (
    "bank_size",
    "suggestions",
    "over_length",
    "personal_data",
    "sensitive",
    "multi_line_or_code",
    "identical_to_message",
    "accuracy@3",
    "similarity@3",
    "similarity@3_without_echoes",
    "bank_over_length",
    "bank_personal_data",
    "max_score",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="worktree of the older code")
    parser.add_argument("--data-dir", default="var/bench-quality", help="the demo's folder")
    parser.add_argument("--data", type=Path, help="a JSONL/CSV file to import and compare too")
    parser.add_argument("--work", type=Path, default=Path("var/bench-served"))
    parser.add_argument("--out", default="docs/figures/served_set.json")
    args = parser.parse_args()

    encoder_settings = load_settings({"data_dir": args.data_dir})
    encoder = Encoder.from_config(encoder_settings.encoder, encoder_settings.embedding_cache)
    folders: dict[str, tuple[Path, Path | None]] = {"demo": (Path(args.data_dir), None)}
    if args.data is not None:
        folders[args.data.name] = (Path(f"{args.data_dir}-{args.data.stem}"), args.data)
    commit = subprocess.run(
        ["git", "-C", str(args.before), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    reports = {}
    for name, (folder, data_file) in folders.items():
        data = prepare(name, folder, encoder, data_file)
        reports[name] = compare(data, encoder, encoder_settings, args.before, args.work)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {
                "measured": dt.date.today().isoformat(),
                "before_commit": commit,
                "data_sets": reports,
            },
            indent=2,
        )
    )
    for name, report in reports.items():
        print(f"\n{name}: {report['benchmark_examples']} benchmark messages, top {SHOWN} each")
        print("| metric | before | after |")
        print("|---|---|---|")
        for metric in METRICS:
            b, a = report["before"][metric], report["after"][metric]
            print(
                f"| {metric} | {b:.3f} | {a:.3f} |"
                if isinstance(b, float)
                else f"| {metric} | {b} | {a} |"
            )
        print(f"after: coverage at the default threshold {report['after']['coverage']:.3f}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
