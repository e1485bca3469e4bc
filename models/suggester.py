"""The suggestion model: two retrieval signals, combined, then a diverse top-k.

1. Dual encoder: the adapted message embedding against each reply's embedding.
2. Nearest messages: the replies that similar training messages received, weighted by how
   similar those messages are (a soft vote).

Both are measured apart and together by ``bench/quality.py``; the combination weights are
chosen on held-out training data when the model is trained (see ``models.training``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass

import faiss
import numpy as np

from core.settings import Settings
from models.adapter import Adapter
from models.bank import ResponseBank
from models.encoder import Encoder
from models.index import build_index
from models.index import search


@dataclass(frozen=True)
class ScoringWeights:
    dual: float = 1.0
    knn: float = 1.0
    prior: float = 0.05
    # Sharpness of the nearest-message vote: lower trusts the very nearest messages more.
    knn_temperature: float = 0.05
    # Added to replies seen in the niche the client named.
    niche_bonus: float = 0.1

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class RetrievalConfig:
    knn_neighbours: int = 20
    candidates: int = 50
    diversity_ceiling: float = 0.85
    exact_index_limit: int = 50_000

    @classmethod
    def from_settings(cls, settings: Settings) -> RetrievalConfig:
        return cls(
            knn_neighbours=settings.knn_neighbours,
            candidates=settings.candidates,
            diversity_ceiling=settings.diversity_ceiling,
            exact_index_limit=settings.exact_index_limit,
        )


@dataclass(frozen=True)
class Suggestion:
    reply_id: int
    text: str
    score: float


@dataclass
class Candidates:
    """Every candidate reply of one message with each signal's score, before combining."""

    ids: np.ndarray
    dual: np.ndarray
    knn: np.ndarray
    prior: np.ndarray

    def combined(
        self, weights: ScoringWeights, niche_match: np.ndarray | None = None
    ) -> np.ndarray:
        score = weights.dual * self.dual + weights.knn * self.knn + weights.prior * self.prior
        if niche_match is not None:
            score = score + weights.niche_bonus * niche_match
        return score

    def ranked(self, weights: ScoringWeights) -> np.ndarray:
        """Candidate reply ids, best first (ties broken by the dual score, then by id)."""
        order = np.lexsort((self.ids, -self.dual, -self.combined(weights)))
        return self.ids[order]


class SuggestionModel:
    """A trained, loadable suggestion model.

    Example:
        >>> model.suggest("are we still on for lunch?", k=3)  # doctest: +SKIP
        [Suggestion(reply_id=12, text='Yes, see you at noon.', score=1.42), ...]
    """

    def __init__(
        self,
        encoder: Encoder,
        adapter: Adapter,
        bank: ResponseBank,
        bank_embeddings: np.ndarray,
        message_embeddings: np.ndarray,
        message_reply_ids: np.ndarray,
        weights: ScoringWeights,
        retrieval: RetrievalConfig,
        bank_index: faiss.Index | None = None,
        message_index: faiss.Index | None = None,
    ) -> None:
        self.encoder = encoder
        self.adapter = adapter
        self.bank = bank
        self.bank_embeddings = bank_embeddings
        self.message_embeddings = message_embeddings
        self.message_reply_ids = message_reply_ids
        self.weights = weights
        self.retrieval = retrieval
        limit = retrieval.exact_index_limit
        self.bank_index = bank_index or build_index(bank_embeddings, limit)
        self.message_index = message_index or build_index(message_embeddings, limit)
        self._niche_sets = [set(n) for n in bank.niches]

    def candidates(self, messages: Sequence[str]) -> list[Candidates]:
        """Score every candidate reply of each message by each signal."""
        base = self.encoder.encode(messages)
        return self.candidates_for_embeddings(base)

    def candidates_for_embeddings(self, base: np.ndarray) -> list[Candidates]:
        adapted = self.adapter.apply(base)
        _, dual_ids = search(self.bank_index, adapted, self.retrieval.candidates)
        knn_sims, knn_rows = search(self.message_index, base, self.retrieval.knn_neighbours)
        result = []
        for i in range(len(base)):
            valid = knn_rows[i] >= 0
            neighbour_replies = self.message_reply_ids[knn_rows[i][valid]]
            ids = np.unique(np.concatenate([dual_ids[i][dual_ids[i] >= 0], neighbour_replies]))
            dual = self.bank_embeddings[ids] @ adapted[i]
            votes = np.exp((knn_sims[i][valid] - 1.0) / self.weights.knn_temperature)
            knn = np.zeros(len(ids), dtype=np.float32)
            np.add.at(knn, np.searchsorted(ids, neighbour_replies), votes)
            knn /= max(float(votes.sum()), 1e-12)
            result.append(Candidates(ids, dual, knn, self.bank.prior[ids]))
        return result

    def suggest(self, message: str, k: int = 3, niche: str | None = None) -> list[Suggestion]:
        return self.suggest_many([message], k, [niche])[0]

    def suggest_many(
        self,
        messages: Sequence[str],
        k: int = 3,
        niches: Sequence[str | None] | None = None,
        weights: ScoringWeights | None = None,
    ) -> list[list[Suggestion]]:
        """Top-k distinct suggestions for each message (one encoder pass for all)."""
        weights = weights or self.weights
        niches = niches or [None] * len(messages)
        out = []
        for cands, niche in zip(self.candidates(messages), niches, strict=True):
            match = None
            if niche is not None:
                match = np.array([niche in self._niche_sets[r] for r in cands.ids], np.float32)
            scores = cands.combined(weights, match)
            order = np.lexsort((cands.ids, -cands.dual, -scores))
            out.append(self._diverse(cands.ids[order], scores[order], k))
        return out

    def _diverse(self, ids: np.ndarray, scores: np.ndarray, k: int) -> list[Suggestion]:
        """Greedy top-k in which no two suggestions are more alike than the ceiling."""
        chosen: list[int] = []
        picked: list[Suggestion] = []
        for rid, score in zip(ids, scores, strict=True):
            if chosen:
                sims = self.bank_embeddings[chosen] @ self.bank_embeddings[rid]
                if float(sims.max()) >= self.retrieval.diversity_ceiling:
                    continue
            chosen.append(int(rid))
            picked.append(Suggestion(int(rid), self.bank.texts[rid], round(float(score), 6)))
            if len(picked) == k:
                break
        return picked
