"""What several benchmarks share: distinct messages to encode, and timing an encoder on them."""

from __future__ import annotations

import time

from core.ingest import demo_rows
from models.encoder import Encoder


def distinct_messages(count: int) -> list[str]:
    """Demo messages with a numbered suffix: every one distinct, so no cache answers."""
    base = [example.message for _, example in demo_rows()]
    return [f"{base[i % len(base)]} ({i})" for i in range(count)]


def encode_rate(encoder: Encoder, texts: list[str], batch: int) -> float:
    """Messages per second over one pass, ``batch`` texts per call."""
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        encoder.encode(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)
