"""What several benchmarks share: distinct messages to encode, and timing an encoder on them."""

from __future__ import annotations

import time

from core.demo import chatterbot_rows
from models.encoder import Encoder

# The demo data of the benchmarks whose figures in docs/benchmarks.md were measured on the
# chatterbot corpus (quality, encoder backends, generation, latency): kept so that they can
# be reproduced. The start-up and demo-size benchmarks use the default demo.
BENCH_DEMO = {"demo_dataset": "chatterbot"}


def distinct_messages(count: int) -> list[str]:
    """Chatterbot demo messages with a numbered suffix: every one distinct, so no cache
    answers. (Chatterbot, as when the figures in docs/benchmarks.md were measured.)"""
    base = [example.message for _, example in chatterbot_rows()]
    return [f"{base[i % len(base)]} ({i})" for i in range(count)]


def encode_rate(encoder: Encoder, texts: list[str], batch: int) -> float:
    """Messages per second over one pass, ``batch`` texts per call."""
    start = time.perf_counter()
    for i in range(0, len(texts), batch):
        encoder.encode(texts[i : i + batch])
    return len(texts) / (time.perf_counter() - start)
