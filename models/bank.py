"""The response bank: the distinct replies a model can suggest."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class ResponseBank:
    """The response set's replies with their niches, support and a frequency prior
    (built by models.response_set), and where known their intent, tone and source.

    ``counts`` is each reply's support: the distinct conversations that wrote its meaning.
    ``prior`` is log(1 + support) scaled to [0, 1]: replies many people write are safer
    suggestions, but the scale stays small so rarer replies still surface.

    Only human-written examples count. A reply the model wrote for itself must not make
    that reply more popular: that is the feedback loop by which self-training collapses
    (on the demo data, counting a generation's synthetic rows cut the variety of the
    suggestions by a fifth to a quarter in one generation). Nor is the count weighted by the
    training weights that favour rare niches: those belong in the adapter's loss (weighting
    the prior made a few rare-niche replies the default everywhere, distinct-1 -30%).
    """

    texts: list[str]
    niches: list[list[str]]
    counts: np.ndarray
    prior: np.ndarray
    # Per reply, where the response set knows it (None for the whole bank of a model built
    # before intents, or for one reply it has no value for): the intent it carries
    # (models/catalogue.yaml's name), that intent's tone, and where it came from
    # ("catalogue", "mined" or "curated"). Readers treat a missing value as no intent and
    # "mined" (models.served).
    intents: list[str | None] | None = None
    tones: list[str | None] | None = None
    sources: list[str | None] | None = None

    def __len__(self) -> int:
        return len(self.texts)
