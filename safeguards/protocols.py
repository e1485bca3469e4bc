"""What the safeguards need from the rest of the service, as protocols: an encoder, a
suggestion model, and an evaluator. ``models.encoder.Encoder`` and
``models.suggester.SuggestionModel`` satisfy the first two without importing this package
(``models`` and ``safeguards`` never import each other); ``safeguards.evaluator`` has the
third.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import Protocol
from typing import runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from safeguards.metrics import Evaluation


class TextEncoder(Protocol):
    """Texts in, one L2-normalised row per text out: ``encode(texts)`` returns an
    ``(len(texts), dim)`` float array."""

    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


class Suggester(Protocol):
    """``suggest_many(messages, k)`` returns, per message, up to ``k`` ranked objects with a
    ``text`` attribute."""

    def suggest_many(self, messages: Sequence[str], k: int = ...) -> Sequence[Sequence[Any]]: ...


@runtime_checkable
class Evaluator(Protocol):
    """Anything that measures a model and returns an :class:`~safeguards.metrics.Evaluation`
    whose primary metric is ``primary_metric`` (the shape of sentence-transformers'
    ``SentenceEvaluator``)."""

    @property
    def primary_metric(self) -> str: ...

    def __call__(self, model: Suggester) -> Evaluation: ...
