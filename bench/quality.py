"""Relevance of the clean baseline against its signals and four baselines, on two data sets.

Usage (from the repository root):
    .venv/bin/python -m bench.quality [--data FILE.jsonl] [--data-dir var/bench-quality]
        [--provenance human|human_selected] [--skip-invalid]

``--data`` takes message/reply pairs as users have them: JSONL or CSV, ``niche``,
``provenance`` and ``conversation`` optional (rows that name no provenance are
``--provenance``, human by default). The file is checked before anything is trained; a file
with invalid rows is refused with each row's line (``--skip-invalid`` leaves them out).

One run measures, on the demo data's benchmark split and, with ``--data``, on the benchmark
split of that file imported into a data folder of its own (as ``replyguard data import``
does), for the model (generation 0, trained as ``make run`` trains it), each of its two
signals alone, and four baselines (the popularity prior alone, TF-IDF nearest message, BM25
nearest message, the plain encoder's message-reply cosine):

- accuracy@1/3/10 and MRR@10 against the real replies: a suggestion matches when its
  normalised text is the real reply's or their encoder cosine is at least
  ``settings.evaluation.match_threshold`` (safeguards.relevance.first_match_ranks);
- the 1-of-100 ranking accuracy of the conversational-datasets benchmark (Henderson et al.
  2019, "A Repository of Conversational Datasets"): each benchmark message's real reply
  among 99 real replies of other benchmark messages, ranked by the method's score of the
  (message, reply) pair (:func:`pair_scores` says how each method scores a reply text that
  is not in its bank);
- the model's coverage (share of messages answered) and relevance among answered messages
  over a range of triggering thresholds, the default marked; also plotted.

Every method ranks the same candidates for accuracy@k, the model's response set, and its
list goes through the model's own echo filter and diversity step: only the scoring differs.

Writes docs/figures/quality.json and docs/figures/quality-triggering.png.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
from pathlib import Path
from typing import Any

import bm25s
import matplotlib
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from tqdm import tqdm

from bench.common import BenchData
from bench.common import prepare
from core.ingest import IMPORTABLE
from core.ingest import FileRefused
from core.ingest import ImportFailed
from core.ingest import NothingToImport
from core.ingest import read_examples
from core.provenance import Provenance
from core.ranking import BATCH
from core.ranking import one_of_100
from core.text import normalize
from models.adapter import Adapter
from models.encoder import Encoder
from models.suggester import ScoringWeights
from models.suggester import SuggestionModel
from models.suggester import bank_entries
from models.suggester import knn_votes
from models.suggester import pair_signals
from safeguards.relevance import best_similarity
from safeguards.relevance import encode_ranked
from safeguards.relevance import first_match_ranks
from safeguards.relevance import gold_cosines
from safeguards.relevance import relevance_metrics
from worker.settings import load_settings

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # after choosing the headless backend

DEPTH = 10
SHOWN = 3
MODEL = "model (combined)"
DUAL = "signal 1: dual encoder alone"
KNN = "signal 2: nearest messages alone"
PRIOR = "baseline: popularity prior alone"
TFIDF = "baseline: TF-IDF nearest message"
BM25 = "baseline: BM25 nearest message"
PLAIN = "baseline: plain encoder message-reply cosine"
METHODS = (MODEL, DUAL, KNN, PRIOR, TFIDF, BM25, PLAIN)
BASELINES = (PRIOR, TFIDF, BM25, PLAIN)
# Shares of the benchmark answered at which the triggering curve is drawn (and the default).
CURVE_COVERAGES = tuple(np.round(np.arange(1.0, 0.0, -0.05), 2))


def nearest_message_scores(similarity: np.ndarray, train_bank: np.ndarray, size: int) -> np.ndarray:
    """Score each bank entry, per message, by its most similar training message.

    Args:
        similarity: (n, t) each benchmark message's similarity to each training message.
        train_bank: (t,) the bank entry each training message's reply means (-1: none).
        size: entries in the bank.

    Returns:
        (n, size): the highest similarity of a training message answered with that entry;
        0 where none was (nearest-message retrieval cannot suggest those).
    """
    valid = train_bank >= 0
    order = np.argsort(train_bank[valid], kind="stable")
    ids = train_bank[valid][order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]]) if len(ids) else np.array([], int)
    out = np.zeros((len(similarity), size), dtype=np.float32)
    if len(ids):
        out[:, ids[starts]] = np.maximum.reduceat(similarity[:, valid][:, order], starts, axis=1)
    return np.maximum(out, 0.0)


def ranked_lists(
    model: SuggestionModel, scores: np.ndarray, messages: list[str], base: np.ndarray
) -> list[list[str]]:
    """Each message's top-``DEPTH`` bank replies by ``scores`` (n, bank size), through the
    model's own filters (never the message said back, never a blocked reply) and diversity
    step, so that a baseline's list is shaped like the model's. Entries scoring 0 or less are
    not suggested (a nearest-message method has nothing to say about them)."""
    out = []
    for row, message, vector in zip(scores, messages, base, strict=True):
        ids = np.flatnonzero(row > 0)
        ids = ids[np.lexsort((ids, -row[ids]))]
        allowed = model._allowed(ids, message, vector)
        out.append([s.text for s in model._diverse(ids[allowed], row[ids][allowed], DEPTH)])
    return out


def metrics(ranks: np.ndarray, closeness: np.ndarray) -> dict[str, float]:
    """accuracy@1/3/10, MRR@10 and similarity@3 from first-match ranks (0: no match in the
    first ``DEPTH``) and each message's closeness of its top three (cosine); ``hits@3`` is
    the number of messages behind accuracy@3 (on this data a handful: see the ceiling)."""
    out: dict[str, float] = relevance_metrics(ranks, (1, SHOWN, DEPTH), DEPTH)
    out[f"hits@{SHOWN}"] = int(np.sum((ranks > 0) & (ranks <= SHOWN)))
    out[f"similarity@{SHOWN}"] = float(closeness.mean())
    return out


def pair_scores(
    data: BenchData,
    base: np.ndarray,
    gold_vecs: np.ndarray,
    gold: list[str],
    gold_bank: np.ndarray,
    bank_scores: dict[str, np.ndarray],
) -> dict[str, np.ndarray]:
    """Each method's score of every (benchmark message i, real reply of message j) pair.

    The model and its signals score pairs as training's model selection does
    (models.suggester.pair_signals): the dual encoder ``adapter(message) . reply``; the
    bank-based signals (nearest messages, the popularity prior) score a reply text by the
    response-set entry it means (models.suggester.bank_entries: same text, or cosine at
    least the clustering threshold), and give 0 to a text that means no entry, as they would
    in serving: they can only vote for replies in the bank; the combined model is its own
    weighted sum (its weights chosen at training) divided by the total weight, as it scores
    its bank. TF-IDF and BM25 nearest message score through the bank likewise; the plain
    encoder is ``message . reply``.

    Returns:
        method name -> (n, n) float32.
    """
    model = data.model
    member = gold_bank >= 0
    columns = np.where(member, gold_bank, 0)

    def via_bank(per_entry: np.ndarray) -> np.ndarray:
        return np.where(member[None, :], per_entry[:, columns], 0.0).astype(np.float32)

    signals = pair_signals(model, base, gold_vecs, gold)
    return {
        MODEL: signals.scores(model.weights),
        DUAL: signals.dual,
        KNN: signals.knn,
        PRIOR: signals.prior,
        TFIDF: via_bank(bank_scores[TFIDF]),
        BM25: via_bank(bank_scores[BM25]),
        PLAIN: base @ gold_vecs.T,
    }


def lexical_scores(
    train_messages: list[str], messages: list[str], train_bank: np.ndarray, size: int
) -> dict[str, np.ndarray]:
    """TF-IDF (scikit-learn: word 1-2 grams, sublinear tf) and BM25 (bm25s, Lucene's
    variant) nearest-message scores of every bank entry (:func:`nearest_message_scores`).

    No stop words are removed: chat messages are mostly function words ("are you there?"),
    and an English stop-word list empties many of them. BM25 scores are divided by each
    message's highest, so both are in [0, 1] (the order, which is all that is measured, is
    BM25's)."""
    tfidf = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit(train_messages)
    tfidf_sims = (tfidf.transform(messages) @ tfidf.transform(train_messages).T).toarray()
    retriever = bm25s.BM25()
    retriever.index(
        bm25s.tokenize(train_messages, stopwords=[], show_progress=False), show_progress=False
    )
    queries = bm25s.tokenize(messages, stopwords=[], return_ids=False, show_progress=False)
    # A message with no word of two letters or more ("k", an emoji) matches nothing.
    bm25_sims = np.vstack(
        [retriever.get_scores(q) if q else np.zeros(len(train_messages)) for q in queries]
    )
    bm25_sims /= np.maximum(bm25_sims.max(axis=1, keepdims=True), 1e-12)
    return {
        TFIDF: nearest_message_scores(tfidf_sims, train_bank, size),
        BM25: nearest_message_scores(bm25_sims, train_bank, size),
    }


def triggering_curve(
    best: np.ndarray, ranks: np.ndarray, closeness: np.ndarray, default: float
) -> list[dict[str, float]]:
    """Coverage and relevance among answered messages at each threshold: those that answer
    :data:`CURVE_COVERAGES` of the benchmark, and the model's default (``default: True``)."""
    thresholds = {float(np.quantile(best, 1.0 - c, method="lower")) for c in CURVE_COVERAGES}
    points = []
    for threshold in sorted(thresholds | {default}):
        answered = best >= threshold
        share = float(answered.mean())
        hit = (ranks > 0) & (ranks <= SHOWN)
        points.append(
            {
                "threshold": round(threshold, 6),
                "coverage": share,
                f"answered_accuracy@{SHOWN}": float(hit[answered].mean()) if share else 0.0,
                f"answered_similarity@{SHOWN}": (
                    float(closeness[answered].mean()) if share else 0.0
                ),
                "default": threshold == default,
            }
        )
    return points


def evaluate(data: BenchData, encoder: Encoder) -> dict[str, Any]:
    """Every metric of one data set (module docstring)."""
    model, settings = data.model, data.settings
    messages = [r.message for r in data.benchmark]
    gold = [r.reply for r in data.benchmark]
    threshold = settings.evaluation.match_threshold
    steps = tqdm(total=5 + len(METHODS), desc=f"{data.name}: metrics", unit="step")
    base = encoder.encode(messages)
    gold_vecs = encoder.encode(gold)
    train_replies = [r.reply for r in data.train]
    train_bank = bank_entries(model, encoder.encode(train_replies), train_replies)
    gold_bank = bank_entries(model, gold_vecs, gold)
    steps.update()

    bank_scores = lexical_scores(
        [r.message for r in data.train], messages, train_bank, len(model.bank)
    )
    bank_scores[KNN] = knn_votes(model, base)
    bank_scores[PRIOR] = np.broadcast_to(model.bank.prior, (len(messages), len(model.bank)))
    steps.update()

    variants = {
        MODEL: model.weights,
        DUAL: ScoringWeights(dual=1.0, knn=0.0, prior=0.0, intent=0.0),
        KNN: ScoringWeights(dual=0.0, knn=1.0, prior=0.0, intent=0.0),
    }
    plain = SuggestionModel(
        encoder=encoder,
        adapter=Adapter.identity(base.shape[1]),
        bank=model.bank,
        bank_embeddings=model.bank_embeddings,
        message_embeddings=model.message_embeddings,
        message_reply_ids=model.message_reply_ids,
        weights=ScoringWeights(dual=1.0, knn=0.0, prior=0.0, intent=0.0),
        retrieval=model.retrieval,
    )

    def ranked(name: str) -> list[list[str]]:
        if name in variants:
            rows = model.suggest_embedded(messages, base, DEPTH, weights=variants[name])
        elif name == PLAIN:
            rows = plain.suggest_embedded(messages, base, DEPTH)
        else:
            return ranked_lists(model, bank_scores[name], messages, base)
        return [[s.text for s in row] for row in rows]

    results: dict[str, dict[str, float]] = {}
    ranks_of: dict[str, np.ndarray] = {}
    closeness_of: dict[str, np.ndarray] = {}
    for name in METHODS:
        lists = ranked(name)
        vectors = encode_ranked(lists, encoder)
        cosines = gold_cosines(vectors, gold_vecs)
        ranks_of[name] = first_match_ranks(lists, gold, cosines, threshold)
        closeness_of[name] = best_similarity(vectors, gold_vecs, SHOWN)
        results[name] = metrics(ranks_of[name], closeness_of[name])
        results[name]["suggested_per_message"] = float(np.mean([len(r) for r in lists]))
        steps.update()

    pairs = pair_scores(data, base, gold_vecs, gold, gold_bank, bank_scores)
    for name in METHODS:
        results[name][f"1-of-{BATCH}"] = one_of_100(pairs[name], settings.seed)
    steps.update()

    best = np.array(
        [row[0].score if row else 0.0 for row in model.suggest_embedded(messages, base, 1)]
    )
    curve = triggering_curve(best, ranks_of[MODEL], closeness_of[MODEL], model.triggering.threshold)
    steps.update()

    # The ceiling of any method here: is a reply matching the real one in the bank at all?
    bank_keys = {normalize(t) for t in model.bank.texts}
    reachable = float(
        np.mean(
            [
                s >= threshold or normalize(t) in bank_keys
                for s, t in zip(
                    (gold_vecs @ model.bank_embeddings.T).max(axis=1), gold, strict=True
                )
            ]
        )
    )
    steps.update()
    beaten = {
        metric: [b for b in BASELINES if results[MODEL][metric] <= results[b][metric]]
        for metric in (f"accuracy@{SHOWN}", f"1-of-{BATCH}")
    }
    steps.close()
    return {
        "model": data.manifest.get("version"),
        "benchmark_examples": len(messages),
        "training_examples": len(data.train),
        "one_of_100_messages": len(messages),
        "bank_size": len(model.bank),
        "response_set": data.manifest["training"]["response_set"],
        "match_threshold": threshold,
        "combined_weights": model.weights.as_dict(),
        "triggering": model.triggering.as_dict(),
        "benchmark_coverage_at_default": float((best >= model.triggering.threshold).mean()),
        "reachable_share": reachable,
        "gold_replies_in_bank": float((gold_bank >= 0).mean()),
        "results": results,
        "baselines_not_beaten": beaten,
        "triggering_curve": curve,
    }


def plot(reports: dict[str, dict[str, Any]], path: Path) -> None:
    """Coverage and relevance among answered messages against the threshold, one panel per
    data set, the default threshold marked."""
    fig, axes = plt.subplots(1, len(reports), figsize=(6 * len(reports), 4.2), squeeze=False)
    for ax, (name, report) in zip(axes[0], reports.items(), strict=True):
        curve = report["triggering_curve"]
        x = [p["threshold"] for p in curve]
        ax.plot(x, [p["coverage"] for p in curve], "o-", label="coverage (answered share)")
        ax.plot(
            x,
            [p[f"answered_similarity@{SHOWN}"] for p in curve],
            "s-",
            label=f"similarity@{SHOWN}, answered",
        )
        ax.plot(
            x,
            [p[f"answered_accuracy@{SHOWN}"] for p in curve],
            "^-",
            label=f"accuracy@{SHOWN}, answered",
        )
        default = report["triggering"]["threshold"]
        ax.axvline(default, color="grey", linestyle="--")
        ax.annotate(
            f"default {default:.3f}\n(coverage {report['benchmark_coverage_at_default']:.2f})",
            (default, 0.5),
            textcoords="offset points",
            xytext=(6, 0),
            fontsize=8,
        )
        ax.set_title(f"{name}: {report['benchmark_examples']} benchmark messages")
        ax.set_xlabel("triggering threshold (best suggestion's score)")
        ax.set_ylim(0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def print_report(name: str, report: dict[str, Any]) -> None:
    print(
        f"\n{name}: benchmark {report['benchmark_examples']}, training "
        f"{report['training_examples']}, bank {report['bank_size']}, weights "
        f"{report['combined_weights']}, triggering {report['triggering']}"
    )
    columns = ["accuracy@1", "accuracy@3", "accuracy@10", "mrr@10", "1-of-100", "similarity@3"]
    print("| method | " + " | ".join(columns) + " |")
    print("|---" * (len(columns) + 1) + "|")
    for method, values in report["results"].items():
        print(f"| {method} | " + " | ".join(f"{values[c]:.3f}" for c in columns) + " |")
    print(
        f"ceiling (real replies with a match in the bank): {report['reachable_share']:.3f}; "
        f"benchmark coverage at the default threshold: "
        f"{report['benchmark_coverage_at_default']:.3f}"
    )
    print(f"baselines the model does not beat: {report['baselines_not_beaten']}")
    print("| threshold | coverage | accuracy@3 answered | similarity@3 answered |")
    print("|---|---|---|---|")
    for p in report["triggering_curve"]:
        mark = " (default)" if p["default"] else ""
        print(
            f"| {p['threshold']:.3f}{mark} | {p['coverage']:.3f} "
            f"| {p['answered_accuracy@3']:.3f} | {p['answered_similarity@3']:.3f} |"
        )


def check_data(path: Path, provenance: Provenance, skip_invalid: bool) -> str | None:
    """Read and validate a ``--data`` file before anything is trained, as it will be imported.

    Args:
        path: a JSONL or CSV file of message/reply[/niche][/provenance] rows.
        provenance: of the rows without a ``provenance`` column (``--provenance``).
        skip_invalid: whether invalid rows may be left out (``--skip-invalid``).

    Returns:
        None when the file can be imported, else why not, naming this command's own options
        (core.ingest's errors name none).
    """
    try:
        read_examples(path, provenance, skip_invalid)
    except ImportFailed as exc:
        return f"{exc}\nFix the rows, or pass --skip-invalid to use the valid rows only."
    except (FileRefused, NothingToImport) as exc:
        return str(exc)
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default="var/bench-quality", help="the demo's folder")
    parser.add_argument(
        "--data",
        type=Path,
        help="a JSONL/CSV file of message/reply[/niche][/provenance] pairs to import and "
        "measure too",
    )
    parser.add_argument(
        "--provenance",
        choices=[p.value for p in IMPORTABLE],
        default=Provenance.HUMAN.value,
        help="provenance of the --data rows without a 'provenance' column (default: human)",
    )
    parser.add_argument(
        "--skip-invalid",
        action="store_true",
        help="import the valid rows of --data and leave out the invalid ones",
    )
    parser.add_argument("--out", default="docs/figures/quality.json")
    parser.add_argument("--plot", default="docs/figures/quality-triggering.png")
    args = parser.parse_args()

    provenance = Provenance(args.provenance)
    if args.data is not None:
        refusal = check_data(args.data, provenance, args.skip_invalid)
        if refusal:
            parser.exit(2, f"{parser.prog}: error: {refusal}\n")
    folders: dict[str, tuple[Path, Path | None]] = {"demo": (Path(args.data_dir), None)}
    if args.data is not None:
        folders[args.data.name] = (Path(f"{args.data_dir}-{args.data.stem}"), args.data)
    # One encoder (and embedding cache, in the demo's folder) for every data set.
    settings = load_settings({"data_dir": args.data_dir})
    encoder = Encoder.from_config(settings.encoder, settings.embedding_cache)
    reports: dict[str, dict[str, Any]] = {}
    for name, (folder, data_file) in folders.items():
        data = prepare(name, folder, encoder, data_file, provenance, args.skip_invalid)
        reports[name] = evaluate(data, encoder)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps(
            {"measured": dt.date.today().isoformat(), "encoder": encoder.key, "data_sets": reports},
            indent=2,
        )
    )
    plot(reports, Path(args.plot))
    for name, report in reports.items():
        print_report(name, report)
    print(f"wrote {out} and {args.plot}")


if __name__ == "__main__":
    main()
