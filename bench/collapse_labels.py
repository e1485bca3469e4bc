"""What a finished collapse run's generations were taught: how good the model's labels of the
traffic were, and what the filters, deduplication and the cap did with them.

Usage (from the repository root), after ``replyguard simulate ... --out RUN``:
    .venv/bin/python -m bench.collapse_labels --run RUN [--data demo|FILE] [--policy guarded]
    # writes docs/figures/collapse_labels-<RUN folder name>.json

Per generation of the policy: prompts labelled, replies written, abstentions, removals by
each quality rule and by deduplication, the mix's counts (human, synthetic, dropped by the
cap, human share), and the labels' quality: the mean cosine (base encoder) between the reply
the model wrote and the reply the message's user really wrote (hidden from every model, known
here from the data), and the share of labels whose cosine reaches the match threshold (a
label that says what the user said).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from sqlalchemy import select

from core.db import Database
from core.generations import oldest_first
from core.schema import SyntheticCandidate
from models.encoder import Encoder
from worker.settings import load_settings
from worker.simulation import simulation_rows
from worker.simulation import traffic_order

FIGURES = Path("docs/figures")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--data", default="demo")
    parser.add_argument("--policy", default="guarded")
    args = parser.parse_args()
    settings = load_settings({"seed": 13})
    rows, _ = simulation_rows(args.data, settings)
    real = {e.message: e.reply for e in traffic_order(rows, settings)[1]}
    cache = settings.with_overrides(data_dir=args.run / "cache").embedding_cache
    encoder = Encoder.from_config(settings.encoder, cache)
    # The policy's own database (its SQLite file), whatever DATABASE_URL says.
    db = Database(settings.with_overrides(data_dir=args.run / args.policy, database_url=""))
    with db.session() as session:
        # Each generation after the baseline: its number, each stage's counts, its replies.
        generations = [
            (
                g.number,
                {name: run.counts for name, run in g.stage_runs.items()},
                session.execute(
                    select(SyntheticCandidate.message, SyntheticCandidate.reply).where(
                        SyntheticCandidate.generation_id == g.id
                    )
                ).all(),
            )
            for g in oldest_first(session)
            if g.number > 0
        ]
    db.dispose()
    out = []
    for number, counts, pairs in generations:
        labelled = [(reply, real[message]) for message, reply in pairs if message in real]
        cosine = np.array([])
        if labelled:
            written = encoder.encode([w for w, _ in labelled])
            truth = encoder.encode([t for _, t in labelled])
            cosine = (written * truth).sum(axis=1)
        out.append(
            {
                "generation": number,
                "synthesize": counts.get("synthesize", {}),
                "filter_removed": counts.get("filter", {}).get("removed", {}),
                "dedup_removed": counts.get("deduplicate", {}).get("removed", {}),
                "mix": counts.get("mix", {}),
                "label_cosine_to_real_reply": float(cosine.mean()) if len(cosine) else None,
                "labels_matching_real_reply": (
                    float((cosine >= settings.evaluation.match_threshold).mean())
                    if len(cosine)
                    else None
                ),
            }
        )
        print(json.dumps(out[-1]), flush=True)
    target = FIGURES / f"collapse_labels-{args.run.name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        json.dumps({"run": str(args.run), "policy": args.policy, "generations": out}, indent=2)
    )
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
