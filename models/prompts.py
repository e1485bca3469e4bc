"""The incoming messages each intent answers (the catalogue's ``prompts``), and how well a
message matches an intent by them.

A symmetric sentence encoder such as all-MiniLM-L6-v2 is trained to place paraphrases
together (Reimers and Gurevych 2019), so matching a message to a reply's own text finds
replies that *sound like* the message: on the demo model "good morning!" got "Good
afternoon!" and "Good night!", "I passed my driving test" got "Drive safely". Matching the
message to messages an intent answers is the encoder's own task (message to message), the
way assistants recognise intents from example utterances (Dialogflow's training phrases,
Rasa's NLU examples). The intent signal of a reply is the highest cosine between the
message and a prompt of the reply's intent (models.suggester combines it with the others).
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

    @classmethod
    def empty(cls, dim: int) -> IntentPrompts:
        """No prompts (a model trained before them, or without a catalogue)."""
        return cls((), (), np.zeros((0, dim), dtype=np.float32))


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

    def match(self, messages: np.ndarray) -> np.ndarray:
        """The intent signal of every intent for each message.

        Args:
            messages: (n, d) float32 unit rows, the encoder's embeddings of the messages.

        Returns:
            (n, count) float32 in [0, 1]: the highest cosine between the message and a prompt
            of the intent, clipped at 0; 0 for an intent without prompts, and 0 for every
            intent when no prompt at all comes within :data:`INTENT_MATCH_FLOOR`.
        """
        out = np.zeros((len(messages), self.count), dtype=np.float32)
        if not len(self._codes) or not len(messages):
            return out
        sims = messages @ self._embeddings.T
        out[:, self._present] = np.maximum.reduceat(sims, self._starts, axis=1)
        # A message no prompt comes near is evidence for no intent (keyboard mash is within
        # 0.31-0.45 of short prompts such as "gm" or "mwah").
        out[out.max(axis=1) < INTENT_MATCH_FLOOR] = 0.0
        return np.clip(out, 0.0, 1.0)
