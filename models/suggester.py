"""The suggestion model: retrieval signals, combined, then a diverse top-k.

1. Dual encoder: the adapted message embedding against each reply's embedding.
2. Nearest messages: the replies that similar training messages received, weighted by how
   similar those messages are (a soft vote).
3. Intent: how near the message comes to the prototype of the reply's intent, the mean of
   the messages it answers (the catalogue's prompts, models.prompts).

The first two are measured apart and together by ``bench/quality.py``, and their weights
chosen on held-out training data when the model is trained (see ``models.training``). The
intent signal's weight is not: held-out pairs of a corpus name no catalogue intent, so they
cannot judge it; it is chosen on the catalogue's prompts (``bench/intent_weight.py``) and
measured on the everyday benchmark (docs/benchmarks.md).

The score a client receives is in [0, 1]: the weighted mean of the signals that apply to the
reply (an intent without prompts has no intent signal), each of which is
at most 1 (the dual-encoder cosine; the nearest messages' vote share scaled by how similar
the nearest message is; the reply's prior; the intent signal), clipped at 0 and 1. 1 means every signal at its
maximum. Scores of one model are comparable across messages, which is what triggering
needs: a model answers a message only when its best score reaches the threshold chosen at
training (:class:`Triggering`), as Smart Reply does (Kannan et al. 2016, section 3).

The same signals score any (message, reply text) pair, a reply outside the bank included
(:func:`pair_signals`): what 1-of-100 ranks, in model selection at training
(models.selection), in the evaluator (:meth:`SuggestionModel.pair_scores`) and in
bench/quality.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from dataclasses import dataclass
from typing import Any

import faiss
import numpy as np
from threadpoolctl import ThreadpoolController

from core.ranking import pair_block
from models.adapter import Adapter
from models.bank import UNKNOWN_TONE
from models.bank import ResponseBank
from models.bank import Source
from models.catalogue import Stance
from models.catalogue import Tone
from models.encoder import Encoder
from models.index import build_index
from models.index import search
from models.intents import propagate
from models.intents import unnamed_name
from models.prompts import IntentMatcher
from models.prompts import IntentPrompts
from models.reply_rules import SAME_MEANING
from models.reply_rules import surface_key
from models.tone import SPECIFIC_SYMPATHY_MATCH
from models.tone import ToneClassifier
from models.tone import ToneDetector

# A suggestion at or above this encoder cosine to the message is the message said back.
ECHO_THRESHOLD = 0.95


@dataclass(frozen=True)
class ScoringWeights:
    dual: float = 1.0
    knn: float = 1.0
    prior: float = 0.05
    # Sharpness of the nearest-message vote: lower trusts the very nearest messages more.
    knn_temperature: float = 0.05
    # Added to replies seen in the niche the client named.
    niche_bonus: float = 0.1
    # The intent signal (models.prompts): chosen on the catalogue's prompts alone, 5-fold
    # (`python -m bench.intent_weight`: hit@3 0.143 at 0, 0.209 at 1, 0.222 at 3, 0.220 at 5;
    # docs/benchmarks.md "Intent prototypes"). Not searched at training (see the module
    # docstring); a model written before it existed loads with 0 (models.artifact).
    intent: float = 3.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


@dataclass(frozen=True)
class RetrievalConfig:
    """How a model finds its suggestions.

    Args:
        knn_neighbours: training messages nearest to the message whose replies vote.
        candidates: replies scored per message before diversity and triggering.
        intent_candidates: the intents best matched by their prompts whose replies are
            scored as well, however far their texts are from the message.
        diversity_ceiling: two suggestions at or above this cosine say the same thing, and
            only the better one is shown (models.reply_rules.SAME_MEANING says why 0.85).
        exact_index_limit: above this many rows a FAISS index is approximate (HNSW).
    """

    knn_neighbours: int = 20
    candidates: int = 50
    intent_candidates: int = 10
    diversity_ceiling: float = SAME_MEANING
    exact_index_limit: int = 50_000


@dataclass(frozen=True)
class ReplyLabel:
    """What a reply added to a trained bank means, when it is known: the intent it serves
    (a catalogue intent's name), that intent's tone and stance (models.catalogue), and where
    the reply comes from (models.bank.Source)."""

    intent: str
    tone: str
    stance: str | None
    source: str


@dataclass(frozen=True)
class Suggestion:
    reply_id: int
    text: str
    # In [0, 1]; see the module docstring.
    score: float
    # The intent the reply is served under (the bank's; an unnamed cluster's name for a mined
    # reply that joined none): what the everyday benchmark judges (safeguards.everyday).
    intent: str | None = None


# Triggering.silence's text for a message the model returned no suggestion for. A constant
# too because a stored evaluation keeps only texts: an empty stored list says the same.
NO_REPLY_FITS = (
    "no reply fits this message: sad news gets sympathetic replies or none, and a "
    "message that may be sad news gets none"
)


@dataclass(frozen=True)
class Triggering:
    """When the model answers at all, and which suggestions it shows.

    Every suggestion shown reaches the threshold, not only the first: a list whose first
    reply is good enough may hold a third that is not (on the demo model, "Haha" at 0.13
    below "why is that?" at 0.28 for a death). The model answers a message when at least
    one suggestion reaches it (Smart Reply's triggering, Kannan et al. 2016, section 3).

    Attributes:
        threshold: every suggestion shown must reach this score, in [0, 1].
        target_coverage: the share of held-out training messages the threshold was chosen to
            answer, in (0, 1].
        held_out_coverage: the share it does answer there (ties can push it above target).
    """

    threshold: float
    target_coverage: float
    held_out_coverage: float = 1.0

    @classmethod
    def calibrate(cls, best_scores: Sequence[float], target_coverage: float) -> Triggering:
        """The highest threshold that still answers ``target_coverage`` of the messages whose
        best scores are given (held-out training messages)."""
        if not 0 < target_coverage <= 1:
            raise ValueError(f"target coverage must be in (0, 1], not {target_coverage}")
        scores = np.asarray(best_scores, dtype=np.float64)
        if not len(scores):
            return cls(0.0, target_coverage)
        threshold = float(np.quantile(scores, 1.0 - target_coverage, method="lower"))
        coverage = float((scores >= threshold).mean())
        return cls(round(threshold, 6), target_coverage, round(coverage, 6))

    def shown(self, suggestions: Sequence[Suggestion]) -> list[Suggestion]:
        """The suggestions that reach the threshold, in the given order (what a client
        is shown without asking for every candidate)."""
        return [s for s in suggestions if s.score >= self.threshold]

    def answers(self, suggestions: Sequence[Suggestion]) -> bool:
        """Whether any suggestion reaches the threshold (the model answers the message)."""
        return any(s.score >= self.threshold for s in suggestions)

    def silence(self, suggestions: Sequence[Suggestion]) -> str | None:
        """Why a person is shown no suggestion for a message, in words; None when they are
        shown some. The one place that says it: the API's ``reason``, the dashboard's silent
        cells and bench/suggestions_read.py all show this text.

        Args:
            suggestions: the model's suggestions for the message (``suggest``'s list, before
                :meth:`shown`).

        Returns:
            None when at least one suggestion reaches the threshold (the model answers).
            :data:`NO_REPLY_FITS` when the model returned no suggestion at all: every
            candidate was left out, because the message is sad news (sensitive) and none of
            the sympathetic replies fits it, or it may be sad news (``unsure``: nothing, not
            even with ``force``), or every reply that would fit is blocked (``suggest_many``).
            "not confident: ..." with the threshold and the best score when the model has
            suggestions but none reaches the threshold (``force`` would show them).
        """
        if self.answers(suggestions):
            return None
        if not suggestions:
            return NO_REPLY_FITS
        return (
            f"not confident: no suggestion reached this model's threshold "
            f"{self.threshold:.3f} (best {suggestions[0].score:.3f})"
        )

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


# The BLAS library's threads. After each encoder run ONNX Runtime's threads keep spinning for
# a while; a BLAS product that starts threads of its own then fights them for the cores: the
# intent signal's (n, 1668) product took 20 ms instead of 0.9 ms right after an encoder run
# on two cores (bench/intent_cost.py). The products of one request are small: one thread.
_BLAS = ThreadpoolController()


@dataclass
class Candidates:
    """Every candidate reply of one message with each signal's score, before combining."""

    ids: np.ndarray
    dual: np.ndarray
    knn: np.ndarray
    prior: np.ndarray
    intent: np.ndarray
    # Each candidate's cosine to the nearest prompt of its intent (models.prompts.IntentMatch).
    nearest_prompt: np.ndarray
    # Whether the intent signal counts for the candidate: False for a reply whose intent has
    # no prompts (a reviewer's new intent, a curated reply, an unnamed mined cluster) when the
    # message matches some intent: its signal is then unknown, not 0.
    prompted: np.ndarray

    def combined(
        self, weights: ScoringWeights, niche_match: np.ndarray | None = None
    ) -> np.ndarray:
        score = (
            weights.dual * self.dual
            + weights.knn * self.knn
            + weights.prior * self.prior
            + weights.intent * self.intent
        )
        if niche_match is not None:
            score = score + weights.niche_bonus * niche_match
        return score

    def normalised(
        self, weights: ScoringWeights, niche_match: np.ndarray | None = None
    ) -> np.ndarray:
        """The combined score divided by the total weight of the signals that apply to each
        candidate, clipped to [0, 1]: the intent signal's weight counts only for a candidate
        whose intent has prompts, so a reply of an intent without any (a reviewer's new one)
        is scored by the other signals alone, not pulled down by an unknown taken as 0."""
        total = weights.dual + weights.knn + weights.prior + weights.intent * self.prompted
        return np.clip(self.combined(weights, niche_match) / np.maximum(total, 1e-12), 0.0, 1.0)

    def ranked(self, weights: ScoringWeights) -> np.ndarray:
        """Candidate reply ids, best first (ties broken by the dual score, then by id)."""
        order = np.lexsort((self.ids, -self.dual, -self.normalised(weights)))
        return self.ids[order]


class SuggestionModel:
    """A trained, loadable suggestion model (built by models.training, loaded by
    models.artifact).

    Args:
        encoder: the base encoder of messages and replies (its dimension: d).
        adapter: the message tower's map on the encoder's rows.
        bank: the response set's replies (m of them).
        bank_embeddings: (m, d) float32 unit rows: each reply's encoder embedding.
        message_embeddings: (v, d) float32 unit rows: the training messages that vote for
            replies (the nearest-message signal).
        message_reply_ids: (v,) int64: the bank id each of those messages votes for.
        weights: the signals' weights.
        retrieval: how suggestions are found.
        bank_index, message_index: FAISS indexes of the two matrices (a loaded model's);
            None builds them.
        triggering: when to answer; None answers every message (threshold 0).
        prompts: the catalogue's prompts (the intent signal); None: none.
        tone_classifier: tells sensitive messages (models.tone); None: the nearest-prototype
            rule.

    Example:
        >>> model.suggest("are we still on for lunch?", k=3)  # doctest: +SKIP
        [Suggestion(reply_id=12, text='Yes, see you at noon.', score=1.42), ...]
    """

    def __init__(
        self,
        *,
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
        triggering: Triggering | None = None,
        prompts: IntentPrompts | None = None,
        tone_classifier: ToneClassifier | None = None,
    ) -> None:
        self.encoder = encoder
        self.adapter = adapter
        self.bank = bank
        self.bank_embeddings = bank_embeddings
        self.message_embeddings = message_embeddings
        self.message_reply_ids = message_reply_ids
        self.weights = weights
        self.retrieval = retrieval
        self.triggering = triggering or Triggering(threshold=0.0, target_coverage=1.0)
        # Bank ids never to suggest: the product team's blocks, applied by the web process
        # the moment they are added (webapp.serving); one reference, replaced whole.
        self.blocked_ids: frozenset[int] = frozenset()
        limit = retrieval.exact_index_limit
        self.bank_index = bank_index or build_index(bank_embeddings, limit)
        self.message_index = message_index or build_index(message_embeddings, limit)
        self._niche_sets = [set(n) for n in bank.niches]
        # Each reply's surface form, to tell a suggestion that says the message back.
        self._surface = [surface_key(t) for t in bank.texts]
        self.prompts = prompts if prompts is not None else IntentPrompts.empty(encoder.dim)
        # Which messages only sympathetic replies may answer (models.tone).
        self.tone = ToneDetector(encoder, classifier=tone_classifier)
        codes: dict[str, int] = {}
        # (m,) each reply's intent as a number: one reply per number in a list.
        self._intent_codes = np.asarray(
            [codes.setdefault(i, len(codes)) for i in bank.intents], dtype=np.int64
        )
        self._matcher = IntentMatcher(self.prompts, codes, len(codes))
        # (intents,) the bank ids of each intent number.
        order = np.argsort(self._intent_codes, kind="stable")
        bounds = np.searchsorted(self._intent_codes[order], np.arange(len(codes) + 1))
        self._members = [order[bounds[c] : bounds[c + 1]] for c in range(len(codes))]
        # (s,) the replies that may answer a sensitive message: sympathetic intents only.
        self._sympathetic = np.flatnonzero(
            np.asarray([t == Tone.SYMPATHETIC.value for t in bank.tones], dtype=bool)
        )
        # (m,) the sympathetic replies that answer only the news their intent's prompts
        # describe: shown on a sensitive message only when it is close to one of them.
        general, prompted = set(self.prompts.general), set(self.prompts.intents)
        self._specific = np.asarray(
            [
                tone == Tone.SYMPATHETIC.value and intent in prompted and intent not in general
                for tone, intent in zip(bank.tones, bank.intents, strict=True)
            ],
            dtype=bool,
        )
        self._stances = list(bank.stances)
        # (p, m): 1 where a distress prototype votes for the reply's intent (models.tone).
        voted = [set(intents) for intents in self.tone.replies]
        self._prototype_votes = np.asarray(
            [[intent in names for intent in bank.intents] for names in voted], dtype=np.float32
        ).reshape(len(voted), len(bank))

    def candidates(self, messages: Sequence[str]) -> list[Candidates]:
        """Score every candidate reply of each message by each signal."""
        base = self.encoder.encode(messages)
        return self.candidates_for_embeddings(base)

    def candidates_for_embeddings(
        self, base: np.ndarray, extra: Sequence[np.ndarray | None] | None = None
    ) -> list[Candidates]:
        """Score the candidates of messages already encoded.

        Args:
            base: (n, d) float32, unit rows: the encoder's embedding of each message.
            extra: per message, bank ids to score as well as the nearest ones (the
                sympathetic replies for a sensitive message, so that they are weighed
                even when the encoder ranks other replies nearer), or None.

        Returns:
            Per message, every candidate with each signal's score.
        """
        adapted = self.adapter.apply(base)
        _, dual_ids = search(self.bank_index, adapted, self.retrieval.candidates)
        knn_sims, knn_rows = search(self.message_index, base, self.retrieval.knn_neighbours)
        matched = self._matcher.match(base)
        signal = matched.signal
        any_intent = matched.matched
        best = min(self.retrieval.intent_candidates, signal.shape[1])
        result = []
        for i in range(len(base)):
            valid = knn_rows[i] >= 0
            neighbour_replies = self.message_reply_ids[knn_rows[i][valid]]
            more = extra[i] if extra is not None and extra[i] is not None else dual_ids[i][:0]
            top = np.argpartition(-signal[i], best - 1)[:best] if best else np.arange(0)
            answering = [self._members[c] for c in top.tolist() if signal[i, c] > 0]
            ids = np.unique(
                np.concatenate([dual_ids[i][dual_ids[i] >= 0], neighbour_replies, more, *answering])
            )
            dual = self.bank_embeddings[ids] @ adapted[i]
            votes = np.exp((knn_sims[i][valid] - 1.0) / self.weights.knn_temperature)
            knn = np.zeros(len(ids), dtype=np.float32)
            np.add.at(knn, np.searchsorted(ids, neighbour_replies), votes)
            # The vote share, scaled by how alike the nearest message is: a message like
            # nothing seen before gets little from this signal, whatever the share.
            nearest = max(float(knn_sims[i][valid].max(initial=0.0)), 0.0)
            knn *= nearest / max(float(votes.sum()), 1e-12)
            codes = self._intent_codes[ids]
            result.append(
                Candidates(
                    ids,
                    dual,
                    knn,
                    self.bank.prior[ids],
                    intent=signal[i, codes],
                    nearest_prompt=matched.nearest[i, codes],
                    # A message no prompt comes near matched no intent (the floor): that
                    # is evidence against every intent, so every reply's signal counts as 0.
                    prompted=self._matcher.prompted[codes] | ~any_intent[i],
                )
            )
        return result

    def pair_scores(
        self,
        messages: np.ndarray,
        replies: np.ndarray,
        texts: Sequence[str],
        columns: np.ndarray | None = None,
    ) -> np.ndarray:
        """The model's score of (message, reply text) pairs, for 1-of-100
        (:func:`pair_signals` says how a reply outside the bank is scored).

        Args:
            messages: (n, d) the encoder's unit rows of the messages.
            replies: (m, d) the encoder's unit rows of the reply texts.
            texts: (m,) the reply texts.
            columns: None for all (n, m) pairs; else (n, batch) reply indices per message.
        """
        return pair_signals(self, messages, replies, texts, columns).scores(self.weights)

    def suggest(self, message: str, k: int = 3, niche: str | None = None) -> list[Suggestion]:
        return self.suggest_many([message], k, [niche])[0]

    def suggest_many(
        self,
        messages: Sequence[str],
        k: int = 3,
        niches: Sequence[str | None] | None = None,
        weights: ScoringWeights | None = None,
    ) -> list[list[Suggestion]]:
        """Top-k suggestions of different intents for each message (one encoder pass for
        all), best first, never the message said back and never a blocked reply; for a
        sensitive message (models.tone) only sympathetic replies, for any other none, and
        for a message that may be sad news (``unsure``) nothing at all. Which of them to show is
        :attr:`triggering`'s call (``triggering.shown(suggestions)``: every one shown
        reaches the threshold)."""
        base = self.encoder.encode(messages)
        return self.suggest_embedded(messages, base, k, niches, weights)

    def suggest_embedded(
        self,
        messages: Sequence[str],
        base: np.ndarray,
        k: int = 3,
        niches: Sequence[str | None] | None = None,
        weights: ScoringWeights | None = None,
    ) -> list[list[Suggestion]]:
        """:meth:`suggest_many` for messages already encoded: ``base`` is (n, d) float32,
        unit rows, the encoder's embedding of each message."""
        with _BLAS.limit(limits=1, user_api="blas"):
            return self._suggest_embedded(messages, base, k, niches, weights)

    def _suggest_embedded(
        self,
        messages: Sequence[str],
        base: np.ndarray,
        k: int,
        niches: Sequence[str | None] | None,
        weights: ScoringWeights | None,
    ) -> list[list[Suggestion]]:
        weights = weights or self.weights
        niches = niches or [None] * len(messages)
        sensitive, unsure = self.tone.judge_many(list(messages), base)
        extra = [self._sympathetic if s else None for s in sensitive]
        out: list[list[Suggestion]] = []
        for message, vector, cands, niche, delicate, doubtful in zip(
            messages,
            base,
            self.candidates_for_embeddings(base, extra),
            niches,
            sensitive,
            unsure,
            strict=True,
        ):
            if doubtful:
                # Maybe sad news: sympathy would be wrong if it is not, anything else if it is.
                out.append([])
                continue
            match = None
            if niche is not None:
                match = np.array([niche in self._niche_sets[r] for r in cands.ids], np.float32)
            if delicate:
                # The distress prototypes vote for their sympathetic intents as the nearest
                # training messages vote for their replies (models.tone.DISTRESS_REPLIES):
                # a corpus with little sad news has few messages to vote for sympathy.
                share = self.tone.prototype_votes(vector, weights.knn_temperature)
                votes = (share @ self._prototype_votes[:, cands.ids]).astype(np.float32)
                cands.knn = np.maximum(cands.knn, votes)
            scores = cands.normalised(weights, match)
            order = np.lexsort((cands.ids, -cands.dual, -scores))
            ids = cands.ids[order]
            allowed = self._allowed(ids, message, vector)
            # Sympathy answers sensitive messages, and only sympathy does: on the demo model
            # "my phone died" got "Deeply sorry for your loss" and "I passed my driving
            # test" got "Oh no, I'm so sorry" while these were allowed elsewhere.
            sympathetic = np.isin(ids, self._sympathetic)
            allowed &= sympathetic if delicate else ~sympathetic
            if delicate:
                # "Sorry for your loss" for a stroke, "Get some rest" for a lost job: a
                # sympathetic reply for one kind of news needs a message close to that news.
                close = cands.nearest_prompt[order] >= SPECIFIC_SYMPATHY_MATCH
                allowed &= ~self._specific[ids] | close
            out.append(self._diverse(ids[allowed], scores[order][allowed], k))
        return out

    def is_sensitive(self, message: str) -> bool:
        """Whether only sympathetic replies may answer ``message`` (models.tone)."""
        return self.tone.detect(message, self.encoder.encode([message])[0]).sensitive

    def _allowed(self, ids: np.ndarray, message: str, vector: np.ndarray) -> np.ndarray:
        """Mask of candidates that are neither blocked nor the message said back."""
        echo = self.bank_embeddings[ids] @ vector >= ECHO_THRESHOLD
        key = surface_key(message)
        blocked = self.blocked_ids
        return np.array(
            [
                not (e or int(r) in blocked or self._surface[r] == key)
                for r, e in zip(ids, echo, strict=True)
            ],
            dtype=bool,
        )

    def with_curated(
        self,
        texts: Sequence[str],
        niches: Sequence[str],
        embeddings: np.ndarray,
        labels: Sequence[ReplyLabel | None] | None = None,
    ) -> SuggestionModel:
        """A copy whose bank also holds these replies (curated replies, and the replies of
        intents reviewers added: served at once, before any retraining; the next trained
        model holds them in its own response set).

        Args:
            texts: the replies not in the bank yet.
            niches: each one's niche.
            embeddings: (len(texts), d) float32, unit rows.
            labels: each reply's intent, tone, stance and source where it is known (a
                reviewer's intent); None (for all, or for one) joins the reply to an intent
                by propagation from the bank's catalogue replies, as a curated reply.
        """
        if not texts:
            return self
        count = float(self.bank.counts.min(initial=1.0))
        counts = np.concatenate([self.bank.counts, np.full(len(texts), count, np.float32)])
        # The trained priors stay (they are intents', models.response_set); a curated reply
        # gets the lowest, as the trained set gives it the lowest support.
        low = float(self.bank.prior.min(initial=0.0))
        prior = np.concatenate([self.bank.prior, np.full(len(texts), low, np.float32)])
        intents, tones, stances = self._intents_of(list(texts), embeddings)
        sources = [Source.CURATED.value] * len(texts)
        for i, label in enumerate(labels or ()):
            if label is not None:
                intents[i], tones[i], stances[i] = label.intent, label.tone, label.stance
                sources[i] = label.source
        bank = ResponseBank(
            [*self.bank.texts, *texts],
            [*self.bank.niches, *([n] for n in niches)],
            counts,
            prior.astype(np.float32),
            intents=[*self.bank.intents, *intents],
            tones=[*self.bank.tones, *tones],
            stances=[*self.bank.stances, *stances],
            sources=[*self.bank.sources, *sources],
        )
        return self.replaced(
            bank=bank,
            bank_embeddings=np.vstack([self.bank_embeddings, embeddings]).astype(np.float32),
            bank_index=None,
        )

    def replaced(self, **changes: Any) -> SuggestionModel:
        """A copy of this model with some constructor arguments changed (the others, the
        indexes and the blocked replies kept), like :func:`dataclasses.replace`.

        Args:
            changes: keyword arguments of :class:`SuggestionModel`; ``bank_index=None`` or
                ``message_index=None`` rebuilds that index (needed with a new matrix).

        Raises:
            TypeError: a name that is not an argument of the constructor.
        """
        arguments: dict[str, Any] = {
            "encoder": self.encoder,
            "adapter": self.adapter,
            "bank": self.bank,
            "bank_embeddings": self.bank_embeddings,
            "message_embeddings": self.message_embeddings,
            "message_reply_ids": self.message_reply_ids,
            "weights": self.weights,
            "retrieval": self.retrieval,
            "bank_index": self.bank_index,
            "message_index": self.message_index,
            "triggering": self.triggering,
            "prompts": self.prompts,
            "tone_classifier": self.tone.classifier,
        }
        unknown = set(changes) - set(arguments)
        if unknown:
            raise TypeError(f"not an argument of SuggestionModel: {', '.join(sorted(unknown))}")
        model = SuggestionModel(**{**arguments, **changes})
        model.blocked_ids = self.blocked_ids
        return model

    def _intents_of(
        self, texts: list[str], embeddings: np.ndarray
    ) -> tuple[list[str], list[str], list[str | None]]:
        """Intent, tone and stance of replies added to a trained bank (curated ones served
        before the next training): propagation from the bank's catalogue replies, as the
        response set does it (models.intents), or an unnamed cluster of their own."""
        seeds = [i for i, s in enumerate(self.bank.sources) if s == Source.CATALOGUE.value]
        names = sorted({self.bank.intents[i] for i in seeds})
        label = {name: n for n, name in enumerate(names)}
        first = {self.bank.intents[i]: i for i in reversed(seeds)}
        found = propagate(
            self.bank_embeddings[seeds],
            np.asarray([label[self.bank.intents[i]] for i in seeds], dtype=np.int64),
            len(names),
            np.asarray(embeddings, dtype=np.float32),
        )
        intents: list[str] = []
        tones: list[str] = []
        stances: list[str | None] = []
        for text, joined in zip(texts, found.labels.tolist(), strict=True):
            if joined >= 0:
                seed = first[names[joined]]
                intents.append(names[joined])
                tones.append(self.bank.tones[seed])
                stances.append(self.bank.stances[seed])
            else:
                intents.append(unnamed_name(surface_key(text)))
                tones.append(UNKNOWN_TONE)
                stances.append(None)
        return intents, tones, stances

    def _diverse(self, ids: np.ndarray, scores: np.ndarray, k: int) -> list[Suggestion]:
        """A list of different intents: greedy top-k, best first, in which no two
        suggestions share an intent or are more alike than the diversity ceiling; when the
        first says yes (stance ``yes``) and a reply that says no (stance ``no``) is among the
        candidates and reaches the triggering threshold, it is offered beside it, second
        (Kannan et al. 2016, section 5: "a negative reply beside positive ones").

        Args:
            ids: (c,) candidate bank ids, best first (already filtered: allowed, tone).
            scores: (c,) their scores in [0, 1].
            k: the list's length at most.
        """
        chosen: list[int] = []
        picked: list[Suggestion] = []
        intents: set[int] = set()
        for rid, score in zip(ids.tolist(), scores.tolist(), strict=True):
            if len(picked) == k:
                break
            if not self._fits(rid, chosen, intents):
                continue
            chosen.append(rid)
            intents.add(int(self._intent_codes[rid]))
            picked.append(self._suggestion(rid, score))
        if k < 2 or not picked or self._stances[picked[0].reply_id] != Stance.YES.value:
            return picked
        if any(self._stances[p.reply_id] == Stance.NO.value for p in picked):
            return picked
        threshold = self.triggering.threshold
        for rid, score in zip(ids.tolist(), scores.tolist(), strict=True):
            if self._stances[rid] != Stance.NO.value or score < threshold:
                continue
            if not self._fits(rid, chosen, intents):
                continue
            no = self._suggestion(rid, score)
            return [picked[0], no, *picked[1:]][:k]
        return picked

    def _suggestion(self, rid: int, score: float) -> Suggestion:
        return Suggestion(rid, self.bank.texts[rid], round(score, 6), self.bank.intents[rid])

    def _fits(self, rid: int, chosen: list[int], intents: set[int]) -> bool:
        """Whether ``rid`` may join a list holding ``chosen`` (of ``intents``)."""
        if int(self._intent_codes[rid]) in intents:
            return False
        if chosen:
            sims = self.bank_embeddings[chosen] @ self.bank_embeddings[rid]
            if float(sims.max()) >= self.retrieval.diversity_ceiling:
                return False
        return True


@dataclass(frozen=True)
class PairSignals:
    """Each signal's score of (message i, reply j) pairs, before the weights combine them.

    Attributes:
        dual: (n, m) the adapted message's cosine with the reply.
        knn: (n, m) the nearest-message vote for the response-set entry the reply means (0
            when it means none: that signal can only vote for replies in the bank).
        prior: (n, m) that entry's prior (0 likewise).
    """

    dual: np.ndarray
    knn: np.ndarray
    prior: np.ndarray

    def scores(self, weights: ScoringWeights) -> np.ndarray:
        """(n, m) the weighted sum divided by the total weight, as the model scores its bank
        (:meth:`Candidates.normalised`, unclipped: clipping only ties the order)."""
        total = max(weights.dual + weights.knn + weights.prior, 1e-12)
        return (
            weights.dual * self.dual + weights.knn * self.knn + weights.prior * self.prior
        ) / total


def bank_entries(model: SuggestionModel, replies: np.ndarray, texts: Sequence[str]) -> np.ndarray:
    """The response-set entry each reply text means, as the response set clusters replies.

    Args:
        model: its bank and bank embeddings.
        replies: (m, d) float32 unit rows: the texts' encoder embeddings.
        texts: (m,) the reply texts.

    Returns:
        (m,) int64 bank ids: the entry of the same surface text, else the nearest entry when
        at least ``model.retrieval.diversity_ceiling`` alike (the response set's clustering
        threshold), else -1.
    """
    if not len(model.bank) or not len(texts):
        return np.full(len(texts), -1, dtype=np.int64)
    by_key = {surface_key(t): i for i, t in enumerate(model.bank.texts)}
    sims = replies @ model.bank_embeddings.T
    nearest = sims.argmax(axis=1)
    close = sims[np.arange(len(texts)), nearest] >= model.retrieval.diversity_ceiling
    ids = np.where(close, nearest, -1)
    for i, text in enumerate(texts):
        ids[i] = by_key.get(surface_key(text), ids[i])
    return ids.astype(np.int64)


def knn_votes(model: SuggestionModel, messages: np.ndarray) -> np.ndarray:
    """(n, bank size) float32: the model's nearest-message signal for every bank entry (0
    for the entries no near message voted for); ``messages`` are (n, d) encoder rows."""
    out = np.zeros((len(messages), len(model.bank)), dtype=np.float32)
    for i, candidates in enumerate(model.candidates_for_embeddings(messages)):
        out[i, candidates.ids] = candidates.knn
    return out


def pair_signals(
    model: SuggestionModel,
    messages: np.ndarray,
    replies: np.ndarray,
    texts: Sequence[str],
    columns: np.ndarray | None = None,
) -> PairSignals:
    """Every signal's score of (message, reply) pairs, as the model scores any reply text:
    the dual encoder ``adapter(message) . reply``; the bank signals score a reply by the
    response-set entry it means (:func:`bank_entries`), and give 0 to a text that means
    none, as they would in serving.

    Args:
        model: the suggestion model.
        messages: (n, d) float32 unit rows, the encoder's embeddings of the messages.
        replies: (m, d) float32 unit rows, the encoder's embeddings of the reply texts.
        texts: (m,) the reply texts.
        columns: None for every pair; else (n, batch) reply indices per message
            (core.ranking.ranking_columns): only those pairs are scored, never an (n, m)
            matrix (what 1-of-100 needs, on any number of messages).

    Returns:
        :class:`PairSignals` of (n, m) matrices, or of (n, batch) blocks with ``columns``.
    """
    entries = bank_entries(model, replies, texts)
    if columns is None:
        columns = np.broadcast_to(np.arange(len(texts)), (len(messages), len(texts)))
        dual = model.adapter.apply(messages) @ replies.T
    else:
        dual = pair_block(model.adapter.apply(messages), replies, columns)
    knn = np.zeros(columns.shape, dtype=np.float32)
    prior = np.zeros(columns.shape, dtype=np.float32)
    if len(model.bank):
        meant = entries[columns]
        member = meant >= 0
        where = np.where(member, meant, 0)
        votes = np.take_along_axis(knn_votes(model, messages), where, axis=1)
        knn = np.where(member, votes, 0.0).astype(np.float32)
        prior = np.where(member, model.bank.prior[where], 0.0).astype(np.float32)
    return PairSignals(dual=dual.astype(np.float32), knn=knn, prior=prior)
