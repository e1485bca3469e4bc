"""The response bank: the distinct replies a model can suggest, each with its intent."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from dataclasses import field

import numpy as np

from models.intents import unnamed_name
from models.reply_rules import surface_key

# The tone of a reply in no catalogue intent (an unnamed cluster): never shown for a
# sensitive message, which only sympathetic replies may answer (models.tone).
UNKNOWN_TONE = "unknown"


class Source(enum.StrEnum):
    """Where a served reply comes from."""

    # A canonical reply of the starter catalogue (models/catalogue.yaml).
    CATALOGUE = "catalogue"
    # A reply the training data wrote again and again (the response set's rule 5).
    MINED = "mined"
    # A reply a reviewer added (models.curation).
    CURATED = "curated"


@dataclass
class ResponseBank:
    """The response set's replies with their niches, support, a frequency prior, and what
    each one means (built by models.response_set).

    ``counts`` is each reply's support: the distinct conversations that wrote its meaning.
    ``prior`` is its intent's log(1 + support) scaled to [0, 1] (models.response_set):
    meanings many people write are safer suggestions, but the scale stays small so rarer
    replies still surface.

    Only human-written examples count. A reply the model wrote for itself must not make
    that reply more popular: that is the feedback loop by which self-training collapses
    (on the demo data, counting a generation's synthetic rows cut the variety of the
    suggestions by a fifth to a quarter in one generation). Nor is the count weighted by the
    training weights that favour rare niches: those belong in the adapter's loss (weighting
    the prior made a few rare-niche replies the default everywhere, distinct-1 -30%).

    Attributes:
        texts, niches, counts, prior: (m,) each reply's text, niches, support and prior.
        intents: (m,) each reply's intent: a catalogue intent's name, or an unnamed cluster
            (``unnamed-<hash>``, models.intents.unnamed_name) for a reviewer to name.
        tones: (m,) its intent's tone (models.catalogue.Tone), :data:`UNKNOWN_TONE` for an
            unnamed cluster.
        stances: (m,) its intent's stance ("yes", "no"), or None.
        sources: (m,) :class:`Source` values.

    A bank built without intents (an artifact written before they existed) gives every
    reply an unnamed cluster of its own, tone unknown, source mined.

    Raises:
        ValueError: the lists are not all of one length.
    """

    texts: list[str]
    niches: list[list[str]]
    counts: np.ndarray
    prior: np.ndarray
    intents: list[str] = field(default_factory=list)
    tones: list[str] = field(default_factory=list)
    stances: list[str | None] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        m = len(self.texts)
        if not self.intents:
            self.intents = [unnamed_name(surface_key(t)) for t in self.texts]
        if not self.tones:
            self.tones = [UNKNOWN_TONE] * m
        if not self.stances:
            self.stances = [None] * m
        if not self.sources:
            self.sources = [Source.MINED.value] * m
        lengths = {
            "texts": m,
            "niches": len(self.niches),
            "counts": len(self.counts),
            "prior": len(self.prior),
            "intents": len(self.intents),
            "tones": len(self.tones),
            "stances": len(self.stances),
            "sources": len(self.sources),
        }
        if len(set(lengths.values())) != 1:
            raise ValueError(f"a response bank's lists differ in length: {lengths}")

    def __len__(self) -> int:
        return len(self.texts)
