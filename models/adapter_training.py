"""Training the message-side adapter (models/adapter.py) with PyTorch: imported by workers and
benchmarks only, so that a web process that serves a model never loads PyTorch.

The adapter is trained with an in-batch softmax (multiple-negatives ranking) loss on
(message, reply) embedding pairs, which takes seconds on a CPU because the encoder's outputs
are computed once and cached.
"""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence

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
    """Train the adapter for ``config.epochs``; return it and the mean loss of each epoch.

    Args:
        messages: (n, d) normalised message embeddings.
        replies: (n, d) normalised embeddings of each message's reply.
        reply_ids: (n,) response-bank id of each reply, so that two rows sharing a reply are
            not treated as each other's negatives.
        weights: (n,) training weight of each pair (for example favouring rare niches).
        start: weights to continue from (a candidate starts from production's).
    """
    snapshots, losses = train_adapter_checkpoints(
        messages, replies, reply_ids, weights, config, (config.epochs,), start
    )
    return snapshots[-1][1], losses


def train_adapter_checkpoints(
    messages: np.ndarray,
    replies: np.ndarray,
    reply_ids: np.ndarray,
    weights: np.ndarray,
    config: AdapterConfig,
    checkpoints: Sequence[int],
    start: Adapter | None = None,
) -> tuple[list[tuple[int, Adapter]], list[float]]:
    """Train the adapter once for ``config.epochs`` and keep a copy of it after each epoch
    count in ``checkpoints``: one run gives every candidate of models.selection, at the cost
    of the longest.

    Args:
        messages, replies, reply_ids, weights, start: as :func:`train_adapter`.
        checkpoints: epoch counts to keep, each in [0, config.epochs]; 0 is the start (the
            identity map, or ``start``). Counts above ``config.epochs`` are left out.

    Returns:
        ([(epochs, adapter), ...] in increasing epochs, one per distinct checkpoint kept;
        the mean loss of each epoch). With one training pair or none nothing is trained, and
        every checkpoint is the start.

    Raises:
        ValueError: no checkpoint in [0, config.epochs].
    """
    kept = sorted({c for c in checkpoints if 0 <= c <= config.epochs})
    if not kept:
        raise ValueError(f"no checkpoint in [0, {config.epochs}] among {list(checkpoints)}")
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
    snapshots: list[tuple[int, Adapter]] = []

    def keep(epochs: int) -> None:
        if epochs in kept:
            snapshots.append((epochs, _snapshot(module)))

    keep(0)
    # One intra-op thread: a step is a 128 x 384 by 384 x 384 product, too small to share, and
    # threads waiting on each other made training 11x slower on two busy cores (30 epochs of
    # the demo: minutes instead of seconds, docs/benchmarks.md "collapse experiment").
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        losses = _epochs(module, optimiser, x, y, ids, w, config, generator, keep)
    finally:
        torch.set_num_threads(threads)
    # Too few pairs to train: every checkpoint is the start.
    done = {epochs for epochs, _ in snapshots}
    snapshots += [(c, _snapshot(module)) for c in kept if c not in done]
    return snapshots, losses


def _snapshot(module: _Residual) -> Adapter:
    """The module's weights now, copied into a numpy :class:`Adapter`."""
    with torch.no_grad():
        return Adapter(
            module.linear.weight.detach().numpy().copy(),
            module.linear.bias.detach().numpy().copy(),
        )


def _epochs(
    module: nn.Module,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    ids: torch.Tensor,
    w: torch.Tensor,
    config: AdapterConfig,
    generator: torch.Generator,
    after_epoch: Callable[[int], None] = lambda epochs: None,
) -> list[float]:
    """Train ``module`` in place, calling ``after_epoch(epochs done)`` after each epoch;
    return the mean loss of each epoch."""
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
        after_epoch(len(losses))
    return losses
