"""Model selection at training: the adapter's epochs (0 allowed), its form and the signal
weights, chosen by held-out 1-of-100 so that a trained model never ranks real replies worse
than the plain encoder.

The plain encoder (all-MiniLM-L6-v2's message-reply cosine) was trained with this in-batch
objective on hundreds of millions of Reddit message-reply pairs: it is already a strong
ranker of chat replies, and a linear adapter trained for a fixed 30 epochs on a few thousand
pairs over-fits them (docs/benchmarks.md, "Adapter epochs against 1-of-100"). So training
keeps a copy of the adapter after several epoch counts of one run (0, 1, 2, 4, 8, 16, 30),
and every candidate is scored on the held-out tenth of training messages
(models.training._held_out):

- **epochs**: a checkpoint of the run; 0 is where it started: the identity map (the plain
  encoder) or, in a generation, the parent's adapter;
- **form**: the residual map ``x + s * (W x + b)`` at a scale ``s`` of the trained map: 1 is
  the map as trained, 0.5 half-way back to the identity (weight-space interpolation between
  the zero-shot and the fine-tuned model, Wortsman et al. 2022, "Robust fine-tuning of
  zero-shot models"), 0 the identity;
- **weights** of the dual-encoder, nearest-message and prior signals
  (models.suggester.ScoringWeights), from :data:`WEIGHT_GRID` (or the parent's, kept).

The score is the 1-of-100 ranking accuracy (Henderson et al. 2019, core.ranking) of the
combined model on held-out (message, real reply) pairs, each scored as the model scores any
pair (models.suggester.pair_signals). The plain encoder (the identity, the dual signal alone)
is one of the candidates, so the chosen model's held-out 1-of-100 is never below it. Ties go
to the simplest candidate: fewer epochs, a smaller scale, less total weight.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any

import numpy as np

from core.ranking import BATCH
from core.ranking import first_place_share
from core.ranking import pair_block
from core.ranking import ranking_batch
from core.ranking import ranking_columns
from core.settings import DEFAULT_SEED
from models.adapter import Adapter
from models.suggester import Candidates
from models.suggester import ScoringWeights
from models.suggester import SuggestionModel
from models.suggester import pair_signals

# Suggestions a client shows: closeness is measured on the best of these.
SHOWN = 3
WEIGHT_GRID = {
    "dual": (0.0, 1.0),
    "knn": (0.0, 0.25, 0.5, 1.0, 2.0, 4.0),
    "prior": (0.0, 0.05, 0.1, 0.2),
}
# The plain encoder's weights: the dual signal alone.
DUAL_ONLY = {"dual": 1.0, "knn": 0.0, "prior": 0.0}


@dataclass(frozen=True)
class SelectionConfig:
    """How training chooses among its candidates.

    Args:
        checkpoints: epoch counts of the one training run to score (those above the
            adapter's ``epochs`` are left out; its ``epochs`` is always scored).
        scales: forms of each checkpoint's map, as the share of the trained residual kept
            (1.0: as trained; 0.5: half-way to the identity). The identity is always scored.
        batch: replies ranked together (1-of-100; fewer held-out messages rank among all).
        seed: shuffles the held-out messages into batches.
    """

    checkpoints: tuple[int, ...] = (0, 1, 2, 4, 8, 16, 30)
    scales: tuple[float, ...] = (0.5, 1.0)
    batch: int = BATCH
    seed: int = DEFAULT_SEED


def scaled(adapter: Adapter, scale: float) -> Adapter:
    """The residual map at ``scale`` of its weight and bias: 1 as given, 0 the identity."""
    return Adapter(adapter.weight * scale, adapter.bias * scale)


@dataclass(frozen=True)
class Choice:
    """One candidate: a checkpoint of the training run, its form and the signal weights.

    Attributes:
        epochs: epochs of this training run (0: its start).
        scale: the share of the map kept (0: the identity, the plain encoder's tower).
        weights: dual, knn and prior weights.
        one_of_100: held-out 1-of-100 of the combined model.
    """

    epochs: int
    scale: float
    weights: dict[str, float]
    one_of_100: float

    @property
    def form(self) -> str:
        """``identity``, ``residual`` (as trained) or ``residual x0.5`` (scaled)."""
        if self.scale == 0.0:
            return "identity"
        return "residual" if self.scale == 1.0 else f"residual x{self.scale:g}"

    def key(self) -> tuple[float, ...]:
        """Best first, then the simplest: fewer epochs, a smaller scale, less weight."""
        w = self.weights
        return (-self.one_of_100, self.epochs, self.scale, sum(w.values()), w["knn"], w["prior"])

    def as_dict(self) -> dict[str, Any]:
        return {
            "epochs": self.epochs,
            "form": self.form,
            "scale": self.scale,
            "weights": dict(self.weights),
            "one_of_100": self.one_of_100,
        }


@dataclass
class SelectionReport:
    """What was chosen and what it was chosen against, for the manifest and the dashboard.

    Attributes:
        chosen: the candidate returned.
        plain_one_of_100: the plain encoder's held-out 1-of-100 (identity, dual alone).
        messages: held-out messages ranked.
        batch: replies ranked together (100; all held-out messages when fewer).
        weights_searched: False when the weights were given (a generation keeps its
            parent's), True when chosen here.
        fell_back: with given weights, no adapter reached the plain encoder, so the plain
            encoder itself (its weights, the dual signal alone) was chosen.
        checkpoints: per (epochs, form): the dual signal's 1-of-100 alone and the best
            combined candidate's, best first.
    """

    chosen: Choice
    plain_one_of_100: float
    messages: int
    batch: int
    weights_searched: bool
    fell_back: bool = False
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """JSON-safe (the manifest's ``training.selection``)."""
        return {
            "epochs": self.chosen.epochs,
            "form": self.chosen.form,
            "scale": self.chosen.scale,
            "weights": dict(self.chosen.weights),
            "held_out_one_of_100": self.chosen.one_of_100,
            "held_out_plain_one_of_100": self.plain_one_of_100,
            "held_out_messages": self.messages,
            "ranked_among": self.batch,
            "weights_searched": self.weights_searched,
            "fell_back_to_plain_encoder": self.fell_back,
            "checkpoints": self.checkpoints,
        }


def select(
    probe: SuggestionModel,
    messages: np.ndarray,
    replies: np.ndarray,
    texts: Sequence[str],
    snapshots: Sequence[tuple[int, Adapter]],
    config: SelectionConfig,
    weights: ScoringWeights | None = None,
    started_from_identity: bool = True,
) -> tuple[Adapter, ScoringWeights, SelectionReport]:
    """Choose the adapter checkpoint, its form and the signal weights by held-out 1-of-100.

    Args:
        probe: a model whose response set and nearest-message index hold no held-out row
            (its own adapter and weights are not used).
        messages: (n, d) float32 unit rows: the held-out messages' encoder embeddings.
        replies: (n, d) float32 unit rows: their real replies' embeddings.
        texts: (n,) the real replies.
        snapshots: (epochs, adapter) checkpoints of one training run
            (models.adapter_training.train_adapter_checkpoints).
        config: checkpoints' forms, the batch and the seed.
        weights: the weights to keep (a generation keeps its parent's); None searches
            :data:`WEIGHT_GRID`.
        started_from_identity: whether the run started at the identity (then its epoch 0 is
            the plain encoder, scored once).

    Returns:
        (the chosen adapter, the chosen weights, the report). The chosen held-out 1-of-100
        is at least the plain encoder's.

    Raises:
        ValueError: fewer than 2 held-out messages, or rows that do not line up.
    """
    n = len(messages)
    if not len(replies) == len(texts) == n:
        raise ValueError(f"{n} messages, {len(replies)} reply vectors and {len(texts)} replies")
    batch = ranking_batch(n, config.batch)
    if not batch:
        raise ValueError(f"model selection needs at least 2 held-out messages, not {n}")
    columns = ranking_columns(n, config.seed, batch)
    signals = pair_signals(probe, messages, replies, texts, columns)
    knn, prior = signals.knn, signals.prior

    def block(adapter: Adapter) -> np.ndarray:
        return pair_block(adapter.apply(messages), replies, columns)

    options = _weight_options(weights)
    identity = Adapter.identity(messages.shape[1])
    plain = first_place_share(block(identity))
    forms = [(0, 0.0, identity)]
    for epochs, adapter in snapshots:
        for scale in config.scales:
            if not (epochs == 0 and started_from_identity) and scale > 0:
                forms.append((epochs, scale, scaled(adapter, scale)))
    choices: list[Choice] = []
    checkpoints = []
    for epochs, scale, adapter in forms:
        dual = block(adapter)
        scored = []
        for w in options:
            total = max(w["dual"] + w["knn"] + w["prior"], 1e-12)
            combined = (w["dual"] * dual + w["knn"] * knn + w["prior"] * prior) / total
            scored.append(Choice(epochs, scale, w, first_place_share(combined)))
        best = min(scored, key=Choice.key)
        checkpoints.append({**best.as_dict(), "dual_one_of_100": first_place_share(dual)})
        choices += scored
    chosen = min(choices, key=Choice.key)
    fell_back = chosen.one_of_100 < plain
    if fell_back:
        # Given weights under which no adapter ranks as well as the plain encoder: the plain
        # encoder itself, never a model worse than it.
        chosen = Choice(0, 0.0, dict(DUAL_ONLY), plain)
    adapters = {(e, s): a for e, s, a in forms}
    checkpoints.sort(key=lambda c: (-c["one_of_100"], c["epochs"], c["scale"]))
    report = SelectionReport(
        chosen, plain, n, batch, weights is None, fell_back, checkpoints=checkpoints
    )
    base = weights or ScoringWeights()
    return (
        adapters[(chosen.epochs, chosen.scale)],
        replace(base, **chosen.weights),
        report,
    )


def _weight_options(weights: ScoringWeights | None) -> list[dict[str, float]]:
    """The given weights alone, or every combination of :data:`WEIGHT_GRID` with a signal
    that tells messages apart (dual or knn above 0)."""
    if weights is not None:
        return [{"dual": weights.dual, "knn": weights.knn, "prior": weights.prior}]
    return [
        {"dual": d, "knn": k, "prior": p}
        for d, k, p in itertools.product(*WEIGHT_GRID.values())
        if d > 0 or k > 0
    ]


def closeness_search(
    cands: list[Candidates], gold: np.ndarray, bank_embeddings: np.ndarray
) -> list[tuple[dict[str, float], float]]:
    """Every weight combination of :data:`WEIGHT_GRID` by held-out closeness, best first.

    The closeness is how near the best of the top three bank replies comes to the real
    reply (mean cosine, :func:`closeness`): what the gate's primary metric, similarity@3,
    measures on the benchmark. Recorded beside the choice (the training report's
    ``held_out_similarity_at_3``); the choice itself is by 1-of-100 (:func:`select`).

    Args:
        cands: each held-out message's candidates (models.suggester.Candidates).
        gold: (n, d) the real replies' embeddings.
        bank_embeddings: (bank size, d) the response set's embeddings.
    """
    results = []
    for options in _weight_options(None):
        score = closeness(cands, gold, bank_embeddings, ScoringWeights(**options))
        results.append((options, score))
    # Best first; among equals the simplest (smallest total weight) wins, deterministically.
    results.sort(key=lambda r: (-r[1], sum(r[0].values()), tuple(r[0].values())))
    return results


def closeness(
    cands: list[Candidates], gold: np.ndarray, bank_embeddings: np.ndarray, weights: ScoringWeights
) -> float:
    """Mean over messages of the highest cosine between the real reply (``gold``, (n, d))
    and the first :data:`SHOWN` bank replies ranked by ``weights``; 0 for no message."""
    total = 0.0
    for c, target in zip(cands, gold, strict=True):
        top = c.ranked(weights)[:SHOWN]
        if len(top):
            total += float((bank_embeddings[top] @ target).max())
    return total / max(len(cands), 1)
