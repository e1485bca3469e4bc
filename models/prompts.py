"""The incoming messages each intent answers (the catalogue's ``prompts``), and how well a
message matches an intent by them.

A symmetric sentence encoder such as all-MiniLM-L6-v2 is trained to place paraphrases
together (Reimers and Gurevych 2019), so matching a message to a reply's own text finds
replies that *sound like* the message: on the demo model "good morning!" got "Good
afternoon!" and "Good night!", "I passed my driving test" got "Drive safely". Matching the
message to messages an intent answers is the encoder's own task (message to message), the
way assistants recognise intents from example utterances (Dialogflow's training phrases,
Rasa's NLU examples).

The intent signal of a reply is the cosine between the message and its intent's *prototype*,
the normalised mean of the intent's prompts (Snell et al. 2017, "Prototypical Networks for
Few-shot Learning"); models.suggester combines it with the others. With 2-8 prompts an
intent, the prototype recognises intents better than the nearest single prompt, measured on
the prompts alone, 5-fold (each fold's prompts left out): hit@3 0.221 against 0.122, and
against a logistic regression on the prompts, 0.210 (`python -m bench.intent_recognition`,
docs/benchmarks.md "Intent prototypes"). The nearest prompt still decides whether a message
matches any intent at all (:data:`INTENT_MATCH_FLOOR`) and whether it is the news a
specific sympathetic intent answers (models.tone.SPECIFIC_SYMPATHY_MATCH): both thresholds
were chosen on nearest-prompt cosines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from models.catalogue import Catalogue
from models.encoder import Encoder

# The cosine to the nearest prompt below which a message matches no intent. Chosen on the
# prompts alone: 97% of them have another prompt at least this close, each left out of the
# set (`python -m bench.prompt_thresholds`, docs/benchmarks.md "Which sympathy").
INTENT_MATCH_FLOOR = 0.40


@dataclass(frozen=True)
class IntentPrompts:
    """The prompts a model was trained with, encoded.

    Attributes:
        intents: (p,) the intent each prompt belongs to (a prompt of several intents is one
            row per intent).
        texts: (p,) the prompts.
        embeddings: (p, d) float32 unit rows, the encoder's embedding of each prompt.
        general: the sympathetic intents whose replies suit any bad news (the catalogue's
            ``general``); the other sympathetic intents with prompts answer only news close
            to their prompts (models.tone.SPECIFIC_SYMPATHY_MATCH). Empty for a model trained
            before the catalogue said which.
    """

    intents: tuple[str, ...]
    texts: tuple[str, ...]
    embeddings: np.ndarray
    general: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not len(self.intents) == len(self.texts) == len(self.embeddings):
            raise ValueError(
                f"{len(self.intents)} intents, {len(self.texts)} prompts and "
                f"{len(self.embeddings)} embeddings: one of each per prompt"
            )

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def of(
        cls, catalogue: Catalogue | None, encoder: Encoder, show_progress: bool = False
    ) -> IntentPrompts:
        """Every prompt of ``catalogue`` (none when it is None), encoded by ``encoder``."""
        pairs = list(catalogue.prompts()) if catalogue is not None else []
        texts = [prompt for _, prompt in pairs]
        if catalogue is None or not texts:
            return cls.empty(encoder.dim)
        embeddings = encoder.encode(texts, show_progress, what="messages of the intent catalogue")
        return cls(
            tuple(i.name for i, _ in pairs),
            tuple(texts),
            np.asarray(embeddings, dtype=np.float32),
            tuple(i.name for i in catalogue.intents if i.general),
        )

    def subset(self, keep: np.ndarray) -> IntentPrompts:
        """The prompts where ``keep`` ((p,) bool) is True, the general intents kept (what a
        benchmark leaves a fold out with)."""
        return IntentPrompts(
            tuple(np.asarray(self.intents)[keep]),
            tuple(np.asarray(self.texts)[keep]),
            self.embeddings[keep],
            self.general,
        )

    @classmethod
    def empty(cls, dim: int) -> IntentPrompts:
        """No prompts (a model trained before them, or without a catalogue)."""
        return cls((), (), np.zeros((0, dim), dtype=np.float32))


@dataclass(frozen=True)
class IntentMatch:
    """How well messages match each intent.

    Attributes:
        signal: (n, intents) float32 in [0, 1]: the cosine to the intent's prototype (the
            normalised mean of its prompts), clipped at 0: the intent signal.
        nearest: (n, intents) float32 in [0, 1]: the cosine to the intent's nearest prompt,
            clipped at 0: what the thresholds of nearness compare.
        Both are 0 for an intent without prompts, and 0 for every intent of a message no
        prompt comes within :data:`INTENT_MATCH_FLOOR` of.
    """

    signal: np.ndarray
    nearest: np.ndarray

    @property
    def matched(self) -> np.ndarray:
        """(n,) bool: whether each message matches any intent (a prompt within the floor)."""
        return np.asarray(self.nearest.max(axis=1, initial=0.0) > 0.0)


class IntentMatcher:
    """How well messages match each intent of a response set, by the intents' prompts.

    Args:
        prompts: the model's prompts.
        codes: each intent name of the response set -> its number (0 .. count-1); the
            prompts of an intent not in it are left out.
        count: how many intent numbers there are.
    """

    def __init__(self, prompts: IntentPrompts, codes: Mapping[str, int], count: int) -> None:
        rows = [(codes[name], row) for row, name in enumerate(prompts.intents) if name in codes]
        rows.sort()
        self.count = count
        self._codes = np.asarray([code for code, _ in rows], dtype=np.int64)
        self._embeddings = prompts.embeddings[[row for _, row in rows]].reshape(
            len(rows), prompts.embeddings.shape[1]
        )
        # The intents that have prompts, and where each one's rows start (for reduceat).
        self._present, self._starts = np.unique(self._codes, return_index=True)
        # (count,) bool: whether each intent has prompts (one without has no intent signal).
        self.prompted = np.zeros(count, dtype=bool)
        self.prompted[self._present] = True
        # (present, d) each intent's prototype: the mean of its prompts, made unit length.
        self._prototypes = np.zeros((len(self._present), prompts.embeddings.shape[1]), np.float32)
        if len(self._codes):
            sums = np.add.reduceat(self._embeddings, self._starts, axis=0)
            norms = np.linalg.norm(sums, axis=1, keepdims=True)
            self._prototypes = (sums / np.maximum(norms, 1e-12)).astype(np.float32)

    def match(self, messages: np.ndarray) -> IntentMatch:
        """How well each message matches every intent.

        Args:
            messages: (n, d) float32 unit rows, the encoder's embeddings of the messages.

        Returns:
            :class:`IntentMatch` of two (n, count) float32 matrices.
        """
        signal = np.zeros((len(messages), self.count), dtype=np.float32)
        nearest = np.zeros((len(messages), self.count), dtype=np.float32)
        if not len(self._codes) or not len(messages):
            return IntentMatch(signal, nearest)
        sims = messages @ self._embeddings.T
        nearest[:, self._present] = np.maximum.reduceat(sims, self._starts, axis=1)
        signal[:, self._present] = messages @ self._prototypes.T
        # A message no prompt comes near is evidence for no intent (keyboard mash is within
        # 0.31-0.45 of short prompts such as "gm" or "mwah").
        none = nearest.max(axis=1) < INTENT_MATCH_FLOOR
        signal[none] = 0.0
        nearest[none] = 0.0
        return IntentMatch(np.clip(signal, 0.0, 1.0), np.clip(nearest, 0.0, 1.0))
