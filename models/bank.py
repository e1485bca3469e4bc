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

    The count is plain, not weighted by the training weights that favour rare niches: those
    belong in the adapter's loss. Weighting the prior too made a few rare-niche replies the
    default answer everywhere (distinct-1 of the suggestions fell 30% on the demo benchmark).
    """

    texts: list[str]
    niches: list[list[str]]
    counts: np.ndarray
    prior: np.ndarray

    def __len__(self) -> int:
        return len(self.texts)

    @classmethod
    def build(
        cls, replies: Sequence[str], niches: Sequence[str]
    ) -> tuple[ResponseBank, np.ndarray]:
        """Build from training rows; return the bank and each row's reply id."""
        ids: dict[str, int] = {}
        texts: list[str] = []
        reply_niches: list[list[str]] = []
        counts: list[float] = []
        row_ids = np.empty(len(replies), dtype=np.int64)
        for row, (reply, niche) in enumerate(zip(replies, niches, strict=True)):
            key = normalize(reply)
            rid = ids.get(key)
            if rid is None:
                rid = ids[key] = len(texts)
                texts.append(reply)
                reply_niches.append([])
                counts.append(0.0)
            if niche not in reply_niches[rid]:
                reply_niches[rid].append(niche)
            counts[rid] += 1.0
            row_ids[row] = rid
        count_array = np.asarray(counts, dtype=np.float32)
        log_counts = np.log1p(count_array)
        prior = log_counts / max(float(log_counts.max(initial=0.0)), 1e-12)
        return cls(texts, reply_niches, count_array, prior.astype(np.float32)), row_ids
