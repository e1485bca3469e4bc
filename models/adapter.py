"""The trainable message-side adapter of the dual encoder (its inference, in numpy: the web
process imports no PyTorch; training is models/adapter_training.py).

The encoder stays frozen; the message tower is ``normalize(x + x @ W.T + b)``, a residual linear
map that starts as the identity. It is trained with an in-batch softmax (multiple-negatives
ranking) loss on (message, reply) embedding pairs, which takes seconds on a CPU because the
encoder's outputs are computed once and cached.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.settings import DEFAULT_SEED


@dataclass(frozen=True)
class AdapterConfig:
    """How the adapter is trained (models/adapter_training.py).

    Args:
        epochs: passes over the training pairs: the longest checkpoint; training keeps
            shorter ones and may choose any (0: the identity), models.selection.
        batch_size: pairs per step; the other replies of a batch are each pair's negatives.
        learning_rate: AdamW's step size.
        temperature: the in-batch softmax's temperature (cosines are divided by it).
        weight_decay: AdamW's decay, pulling the map back toward the identity.
        seed: of the shuffles, the initialisation and the held-out split (core.settings).
    """

    epochs: int = 30
    batch_size: int = 128
    learning_rate: float = 2e-3
    temperature: float = 0.05
    weight_decay: float = 1e-4
    seed: int = DEFAULT_SEED


class Adapter:
    """A trained adapter: weights as numpy so inference needs no torch."""

    def __init__(self, weight: np.ndarray, bias: np.ndarray) -> None:
        self.weight = weight.astype(np.float32)
        self.bias = bias.astype(np.float32)

    @classmethod
    def identity(cls, dim: int) -> Adapter:
        return cls(np.zeros((dim, dim), np.float32), np.zeros(dim, np.float32))

    def apply(self, x: np.ndarray) -> np.ndarray:
        y = x + x @ self.weight.T + self.bias
        norms = np.linalg.norm(y, axis=1, keepdims=True)
        return (y / np.maximum(norms, 1e-12)).astype(np.float32)
