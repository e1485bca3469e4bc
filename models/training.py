"""Training a suggestion model from (message, reply) examples."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from core.text import normalize
from models.adapter import Adapter
from models.adapter import AdapterConfig
from models.adapter import train_adapter
from models.bank import ResponseBank
from models.encoder import Encoder
from models.suggester import Candidates
from models.suggester import RetrievalConfig
from models.suggester import ScoringWeights
from models.suggester import SuggestionModel

# Share of training messages held out to choose how the two signals are combined.
VALIDATION_FRACTION = 0.1
# Below this many examples there is too little to hold out: default weights are used.
MIN_EXAMPLES_TO_TUNE = 50
# Suggestions a client shows: the weights are chosen for the best of these.
SHOWN = 3
WEIGHT_GRID = {
    "dual": (0.0, 1.0),
    "knn": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
    "prior": (0.0, 0.05, 0.1, 0.2),
}


@dataclass(frozen=True)
class TrainingExample:
    message: str
    reply: str
    niche: str
    weight: float = 1.0
    # Written by a person (provenance human); only these count toward the reply prior.
    human: bool = True


@dataclass
class TrainingReport:
    examples: int
    bank_size: int
    epoch_losses: list[float]
    weights: ScoringWeights
    validation_examples: int
    # Validation closeness (see _grid_search) of every weight combination tried, best first.
    validation_mrr: list[tuple[dict[str, float], float]] = field(default_factory=list)


def train_model(
    encoder: Encoder,
    examples: Sequence[TrainingExample],
    adapter_config: AdapterConfig,
    retrieval: RetrievalConfig,
    start: Adapter | None = None,
    show_progress: bool = False,
    weights: ScoringWeights | None = None,
) -> tuple[SuggestionModel, TrainingReport]:
    """Train the adapter, choose the signal weights on held-out messages, build the model.

    The adapter is trained on the training messages minus a held-out tenth (grouped by
    message text, chosen by hash so it is reproducible); the weights are the combination with
    the best MRR on that tenth; the final bank and message index hold every example.

    With ``weights`` given (a generation keeps its parent's), nothing is held out and the
    weights are not searched again: a new search can land on a near-equal-relevance option
    with very different diversity, which would be noise to the gate, not a change in data.
    """
    if not examples:
        raise ValueError("cannot train a model on zero examples")
    messages = encoder.encode([e.message for e in examples], show_progress=show_progress)
    replies = encoder.encode([e.reply for e in examples], show_progress=show_progress)
    weights_arr = np.asarray([e.weight for e in examples], dtype=np.float32)
    held_out = _held_out(examples, adapter_config.seed)
    tune = (
        weights is None
        and len(examples) >= MIN_EXAMPLES_TO_TUNE
        and 0 < held_out.sum() < len(examples)
    )
    fit = ~held_out if tune else np.ones(len(examples), dtype=bool)

    fit_examples = [e for e, keep in zip(examples, fit, strict=True) if keep]
    fit_bank, fit_ids = ResponseBank.build(
        [e.reply for e in fit_examples],
        [e.niche for e in fit_examples],
        [e.human for e in fit_examples],
    )
    fit_bank_emb = _bank_embeddings(replies[fit], fit_ids, len(fit_bank))
    adapter, losses = train_adapter(
        messages[fit], replies[fit], fit_ids, weights_arr[fit], adapter_config, start=start
    )

    chosen = weights or ScoringWeights()
    tried: list[tuple[dict[str, float], float]] = []
    if tune:
        probe = SuggestionModel(
            encoder, adapter, fit_bank, fit_bank_emb, messages[fit], fit_ids, chosen, retrieval
        )
        cands = probe.candidates_for_embeddings(messages[held_out])
        tried = _grid_search(cands, replies[held_out], fit_bank_emb)
        best = tried[0][0]
        chosen = ScoringWeights(dual=best["dual"], knn=best["knn"], prior=best["prior"])

    bank, row_ids = ResponseBank.build(
        [e.reply for e in examples], [e.niche for e in examples], [e.human for e in examples]
    )
    model = SuggestionModel(
        encoder,
        adapter,
        bank,
        _bank_embeddings(replies, row_ids, len(bank)),
        messages,
        row_ids,
        chosen,
        retrieval,
    )
    report = TrainingReport(
        examples=len(examples),
        bank_size=len(bank),
        epoch_losses=losses,
        weights=chosen,
        validation_examples=int(held_out.sum()) if tune else 0,
        validation_mrr=tried,
    )
    return model, report


def _held_out(examples: Sequence[TrainingExample], seed: int) -> np.ndarray:
    """Every example whose normalised message hashes into the held-out tenth."""
    cutoff = int(VALIDATION_FRACTION * 2**32)
    flags = []
    for e in examples:
        digest = hashlib.sha256(f"{seed}:{normalize(e.message)}".encode()).digest()
        flags.append(int.from_bytes(digest[:4], "big") < cutoff)
    return np.asarray(flags, dtype=bool)


def _bank_embeddings(replies: np.ndarray, row_ids: np.ndarray, size: int) -> np.ndarray:
    """One embedding per bank reply (the first row that introduced it)."""
    out = np.zeros((size, replies.shape[1]), dtype=np.float32)
    first = np.unique(row_ids, return_index=True)[1]
    out[row_ids[first]] = replies[first]
    return out


def _grid_search(
    cands: list[Candidates], gold: np.ndarray, bank_embeddings: np.ndarray
) -> list[tuple[dict[str, float], float]]:
    """Score every weight combination on the held-out messages, best first.

    The score is how close the best of the top three replies comes to the real reply (mean
    cosine): on data where few real replies recur word for word (the demo corpus), an
    exact-match MRR is decided by a handful of examples, and a noisy choice here shows up as
    noise in every later evaluation.
    """
    results = []
    for dual, knn, prior in itertools.product(*WEIGHT_GRID.values()):
        if dual == 0 and knn == 0:
            continue
        weights = ScoringWeights(dual=dual, knn=knn, prior=prior)
        score = _closeness(cands, gold, bank_embeddings, weights)
        results.append(({"dual": dual, "knn": knn, "prior": prior}, score))
    # Best first; among equals the simplest (smallest total weight) wins, deterministically.
    results.sort(key=lambda r: (-r[1], sum(r[0].values()), tuple(r[0].values())))
    return results


def _closeness(
    cands: list[Candidates], gold: np.ndarray, bank_embeddings: np.ndarray, weights: ScoringWeights
) -> float:
    total = 0.0
    for c, target in zip(cands, gold, strict=True):
        top = c.ranked(weights)[:SHOWN]
        if len(top):
            total += float((bank_embeddings[top] @ target).max())
    return total / max(len(cands), 1)
