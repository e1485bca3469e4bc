"""Relevance of the clean baseline on the demo benchmark split, beside two simple baselines.

Usage:
    .venv/bin/python -m bench.quality [--data-dir DIR] [--out docs/figures/quality.json]

Trains generation 0 on the demo data in DIR if it holds no model yet, then reports recall@1,
recall@3 and MRR (first 10 suggestions) for: a random reply from the bank, TF-IDF
nearest-message retrieval (scikit-learn), each of the model's two signals alone, and the
combined model. All measured in the same run on the same benchmark.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sqlalchemy import select

from bench.common import BENCH_DEMO
from core.db import Database
from core.demo import load_demo
from core.provenance import Provenance
from core.reservoir import benchmark_ids
from core.schema import Example
from core.settings import load_settings
from core.text import normalize
from models.artifact import load_model
from models.encoder import Encoder
from models.registry import artifact_dir
from models.registry import production
from models.suggester import ScoringWeights
from safeguards.relevance import best_similarity
from safeguards.relevance import first_match_ranks
from safeguards.relevance import relevance_figures
from worker.baseline import train_baseline
from worker.context import PipelineContext

DEPTH = 10


def distinct_replies(order: np.ndarray, replies: list[str], depth: int) -> list[str]:
    seen: set[str] = set()
    out: list[str] = []
    for i in order:
        key = normalize(replies[i])
        if key not in seen:
            seen.add(key)
            out.append(replies[i])
            if len(out) == depth:
                break
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="var/bench-quality")
    parser.add_argument("--out", default="docs/figures/quality.json")
    args = parser.parse_args()

    settings = load_settings({"data_dir": args.data_dir, **BENCH_DEMO})
    db = Database(settings)
    db.upgrade()
    encoder = Encoder.from_settings(settings)
    with db.session() as session:
        if production(session) is None:
            load_demo(session, settings)
    with db.session() as session:
        if production(session) is None:
            train_baseline(PipelineContext(settings, db, encoder, show_progress=True), "bench")
    with db.session() as session:
        version = production(session)
        assert version is not None
        held_out = benchmark_ids(session)
        human = list(
            session.scalars(
                select(Example)
                .where(Example.provenance == Provenance.HUMAN.value)
                .order_by(Example.id)
            )
        )
    model, _ = load_model(artifact_dir(settings, version), encoder, version.checksum)
    bench = [e for e in human if e.id in held_out]
    train = [e for e in human if e.id not in held_out]
    messages = [e.message for e in bench]
    gold = [e.reply for e in bench]
    threshold = settings.match_threshold

    def score(ranked: list[list[str]]) -> dict[str, float]:
        figures = relevance_figures(
            first_match_ranks(ranked, gold, encoder, threshold), ks=(1, 3, DEPTH)
        )
        figures["similarity@3"] = float(best_similarity(ranked, gold, encoder, 3).mean())
        return figures

    results: dict[str, dict[str, float]] = {}
    rng = np.random.default_rng(settings.seed)
    bank = model.bank.texts
    results["random reply from the bank"] = score(
        [[bank[i] for i in rng.choice(len(bank), DEPTH, replace=False)] for _ in bench]
    )
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([e.message for e in train])
    sims = (tfidf.transform(messages) @ tfidf.transform([e.message for e in train]).T).toarray()
    train_replies = [e.reply for e in train]
    results["TF-IDF nearest message"] = score(
        [distinct_replies(np.argsort(-row, kind="stable"), train_replies, DEPTH) for row in sims]
    )
    variants = {
        "signal 1: dual encoder alone": ScoringWeights(dual=1.0, knn=0.0, prior=0.0),
        "signal 2: nearest messages alone": ScoringWeights(dual=0.0, knn=1.0, prior=0.0),
        "combined (weights chosen at training)": model.weights,
    }
    timings = {}
    for name, weights in variants.items():
        start = time.perf_counter()
        suggestions = model.suggest_many(messages, k=DEPTH, weights=weights)
        timings[name] = time.perf_counter() - start
        results[name] = score([[s.text for s in row] for row in suggestions])

    # The ceiling of any retrieval model: is a matching reply in the bank at all?
    gold_vecs = encoder.encode(gold)
    best = (gold_vecs @ model.bank_embeddings.T).max(axis=1)
    exact = {normalize(t) for t in bank}
    reachable = float(
        np.mean(
            [(g >= threshold) or (normalize(t) in exact) for g, t in zip(best, gold, strict=True)]
        )
    )

    report = {
        "model": version.version,
        "benchmark_examples": len(bench),
        "training_examples": len(train),
        "bank_size": len(bank),
        "match_threshold": threshold,
        "combined_weights": model.weights.as_dict(),
        "results": results,
        "reachable_share": reachable,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"benchmark: {len(bench)} examples, training: {len(train)}, bank: {len(bank)} replies")
    print(f"combined weights: {model.weights.as_dict()}")
    print(f"| method | similarity@3 | recall@1 | recall@3 | recall@{DEPTH} | MRR |")
    print("|---|---|---|---|---|---|")
    for name, figures in results.items():
        print(
            f"| {name} | {figures['similarity@3']:.3f} | {figures['recall@1']:.3f} "
            f"| {figures['recall@3']:.3f} | {figures[f'recall@{DEPTH}']:.3f} "
            f"| {figures['mrr']:.3f} |"
        )
    print(
        f"benchmark gold replies with a match anywhere in the bank (the ceiling): {reachable:.3f}"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
