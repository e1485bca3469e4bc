"""The response bank: the distinct replies a model can suggest."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from core.text import normalize


@dataclass
class ResponseBank:
    """Distinct replies with their niches and a frequency prior.

    ``prior`` is log(1 + count) scaled to [0, 1]: replies given to many different messages
    are safer suggestions, but the scale stays small so rare replies still surface.

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

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def build(
        cls, replies: Sequence[str], niches: Sequence[str], human: Sequence[bool]
    ) -> tuple[ResponseBank, np.ndarray]:
        """Build from training rows; return the bank and each row's reply id.

        ``human`` says which rows were written by people (they alone count toward the prior).
        """
        ids: dict[str, int] = {}
        texts: list[str] = []
        reply_niches: list[list[str]] = []
        counts: list[float] = []
        row_ids = np.empty(len(replies), dtype=np.int64)
        for row, (reply, niche, real) in enumerate(zip(replies, niches, human, strict=True)):
            key = normalize(reply)
            rid = ids.get(key)
            if rid is None:
                rid = ids[key] = len(texts)
                texts.append(reply)
                reply_niches.append([])
                counts.append(0.0)
            if niche not in reply_niches[rid]:
                reply_niches[rid].append(niche)
            counts[rid] += 1.0 if real else 0.0
            row_ids[row] = rid
        count_array = np.asarray(counts, dtype=np.float32)
        log_counts = np.log1p(count_array)
        prior = log_counts / max(float(log_counts.max(initial=0.0)), 1e-12)
        return cls(texts, reply_niches, count_array, prior.astype(np.float32)), row_ids
