"""Training the message-side adapter (models/adapter.py) with PyTorch: imported by workers and
benchmarks only, so that a web process that serves a model never loads PyTorch.

The adapter is trained with an in-batch softmax (multiple-negatives ranking) loss on
(message, reply) embedding pairs, which takes seconds on a CPU because the encoder's outputs
are computed once and cached.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from models.adapter import Adapter
from models.adapter import AdapterConfig


class _Residual(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(x + self.linear(x), dim=-1)


def train_adapter(
    messages: np.ndarray,
    replies: np.ndarray,
    reply_ids: np.ndarray,
    weights: np.ndarray,
    config: AdapterConfig,
    start: Adapter | None = None,
) -> tuple[Adapter, list[float]]:
    """Train the adapter; return it and the mean loss of each epoch.

    Args:
        messages: (n, d) normalised message embeddings.
        replies: (n, d) normalised embeddings of each message's reply.
        reply_ids: (n,) response-bank id of each reply, so that two rows sharing a reply are
            not treated as each other's negatives.
        weights: (n,) training weight of each pair (for example favouring rare niches).
        start: weights to continue from (a candidate starts from production's).
    """
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    dim = messages.shape[1]
    module = _Residual(dim)
    if start is not None:
        with torch.no_grad():
            module.linear.weight.copy_(torch.from_numpy(start.weight))
            module.linear.bias.copy_(torch.from_numpy(start.bias))
    optimiser = torch.optim.AdamW(
        module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
    )
    x = torch.from_numpy(messages.astype(np.float32))
    y = torch.from_numpy(replies.astype(np.float32))
    ids = torch.from_numpy(reply_ids.astype(np.int64))
    w = torch.from_numpy(weights.astype(np.float32))
    losses: list[float] = []
    # One intra-op thread: a step is a 128 x 384 by 384 x 384 product, too small to share, and
    # threads waiting on each other made training 11x slower on two busy cores (30 epochs of
    # the demo: minutes instead of seconds, docs/benchmarks.md "collapse experiment").
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        losses = _epochs(module, optimiser, x, y, ids, w, config, generator)
    finally:
        torch.set_num_threads(threads)
    with torch.no_grad():
        adapter = Adapter(
            module.linear.weight.detach().numpy().copy(),
            module.linear.bias.detach().numpy().copy(),
        )
    return adapter, losses


def _epochs(
    module: nn.Module,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    ids: torch.Tensor,
    w: torch.Tensor,
    config: AdapterConfig,
    generator: torch.Generator,
) -> list[float]:
    """Train ``module`` in place; return the mean loss of each epoch."""
    n = len(x)
    losses: list[float] = []
    for _ in range(config.epochs if n > 1 else 0):
        order = torch.randperm(n, generator=generator)
        total, seen = 0.0, 0.0
        for begin in range(0, n, config.batch_size):
            batch = order[begin : begin + config.batch_size]
            if len(batch) < 2:
                continue
            logits = module(x[batch]) @ y[batch].T / config.temperature
            same_reply = ids[batch][:, None] == ids[batch][None, :]
            # Another row with the same reply is a positive, not a negative: mask it out.
            diagonal = torch.eye(len(batch), dtype=torch.bool)
            logits = logits.masked_fill(same_reply & ~diagonal, float("-inf"))
            target = torch.arange(len(batch))
            loss_each = nn.functional.cross_entropy(logits, target, reduction="none")
            loss = (loss_each * w[batch]).sum() / w[batch].sum()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            total += float(loss.detach()) * len(batch)
            seen += len(batch)
        losses.append(total / max(seen, 1))
    return losses
