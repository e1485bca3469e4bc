"""The 1-of-100 ranking accuracy (Henderson et al. 2019, "A Repository of Conversational
Datasets", section 4): shared by training's model selection (models.selection), the evaluator
(safeguards.evaluator) and the relevance benchmark (bench.quality), which may not import each
other (docs/architecture.md), so it lives here.

For each (message, real reply) pair, the real reply is ranked among itself and 99 real replies
of other messages by a method's score of the (message, reply) pair; the share ranked first is
reported. A method that scores every reply alike gets 1%.
"""

from __future__ import annotations

import numpy as np

# Replies ranked together: the real one and 99 others (Henderson et al. 2019).
BATCH = 100


def one_of_100(scores: np.ndarray, seed: int, batch: int = BATCH) -> float:
    """The 1-of-100 ranking accuracy of a pair-score matrix.

    Args:
        scores: (n, n) float: row i scores message i against the real reply of each message
            j; the diagonal holds each message's own real reply.
        seed: shuffles the messages into batches (numpy's default generator).
        batch: replies ranked together; 100 in the paper (:func:`ranking_batch` gives the
            batch for fewer messages: 1-of-n).

    Returns:
        The share of messages whose real reply is ranked first, in [0, 1]. The messages are
        shuffled and cut into batches of ``batch``; each message's real reply is ranked
        against the other replies of its batch (the last, smaller batch is topped up with
        replies from the first). A message scores 1 when its real reply is strictly first,
        1/(t+1) when it shares first place with t others (the expected score of a random
        tie-break), 0 otherwise.

    Raises:
        ValueError: a matrix that is not square, or fewer than ``batch`` messages.
    """
    n = len(scores)
    if scores.ndim != 2 or scores.shape[1] != n:
        raise ValueError(f"scores must be a square (n, n) matrix, not {scores.shape}")
    columns = ranking_columns(n, seed, batch)
    return first_place_share(scores[np.arange(n)[:, None], columns])


def ranking_columns(n: int, seed: int, batch: int = BATCH) -> np.ndarray:
    """The replies each message's real reply is ranked against, as :func:`one_of_100` draws
    them: scoring only these (n x batch pairs instead of n x n) is what lets model
    selection score many candidates.

    Args:
        n: messages (and their real replies), indexed 0..n-1.
        seed: shuffles the messages into batches (numpy's default generator).
        batch: replies ranked together.

    Returns:
        (n, batch) int64: row i lists reply indices, i itself first, then the other replies
        of message i's batch.

    Raises:
        ValueError: fewer than ``batch`` messages, or a batch below 2.
    """
    if batch < 2 or n < batch:
        raise ValueError(f"1-of-{batch} needs at least {max(batch, 2)} messages, not {n}")
    order = np.random.default_rng(seed).permutation(n)
    columns = np.empty((n, batch), dtype=np.int64)
    for start in range(0, n, batch):
        rows = order[start : start + batch]
        block = np.tile(np.concatenate([rows, order[: batch - len(rows)]]), (len(rows), 1))
        # Row k's own reply sits at column k: swap it to the front.
        k = np.arange(len(rows))
        block[k, k], block[k, 0] = block[k, 0], block[k, k]
        columns[rows] = block
    return columns


def pair_block(
    messages: np.ndarray, replies: np.ndarray, columns: np.ndarray, chunk: int = 1024
) -> np.ndarray:
    """Inner products of each message with the replies it is ranked against, without the
    (n, n) matrix: ``out[i, c] = messages[i] . replies[columns[i, c]]``.

    Args:
        messages: (n, d) float32 rows.
        replies: (n, d) float32 rows.
        columns: (n, batch) from :func:`ranking_columns`.
        chunk: messages multiplied at once ((chunk, n) floats in memory).

    Returns:
        (n, batch) float32.
    """
    out = np.empty(columns.shape, dtype=np.float32)
    for start in range(0, len(messages), chunk):
        rows = slice(start, start + chunk)
        full = messages[rows] @ replies.T
        out[rows] = np.take_along_axis(full, columns[rows], axis=1)
    return out


def first_place_share(block: np.ndarray) -> float:
    """The share of rows whose first column scores highest (ties shared, 1/(t+1)).

    Args:
        block: (n, batch) scores; column 0 is each message's real reply (as
            :func:`ranking_columns` orders them).

    Returns:
        The mean credit, in [0, 1]; 0.0 for no rows.
    """
    if not len(block):
        return 0.0
    true = block[:, :1]
    beaten = (block[:, 1:] > true).any(axis=1)
    ties = (block[:, 1:] == true).sum(axis=1)
    return float(np.where(beaten, 0.0, 1.0 / (1.0 + ties)).mean())


def ranking_batch(n: int, batch: int = BATCH) -> int:
    """The batch 1-of-``batch`` can use on ``n`` messages: ``batch``, or ``n`` when fewer
    (then it is a 1-of-n accuracy, higher by chance alone: 1/n for a method that cannot
    tell replies apart); 0 when fewer than 2 (nothing to rank)."""
    size = min(batch, n)
    return size if size >= 2 else 0
