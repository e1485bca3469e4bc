"""Micro-batching answers exactly what the model answers alone, in fewer encoder passes."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from models.artifact import load_model
from models.registry import artifact_dir
from models.registry import production
from webapp.batching import MicroBatcher

MESSAGES = [
    "Hello, how are you?",
    "Tell me a joke",
    "What is a computer?",
    "I feel sad today",
    "Who are you?",
    "Do you like football?",
    "What is AI?",
    "My laptop won't start",
]


@pytest.fixture
def model(db: Any, settings: Any, encoder: Any):  # type: ignore[no-untyped-def]
    with db.session() as session:
        row = production(session)
    loaded, _ = load_model(artifact_dir(settings, row), encoder, row.checksum)
    return loaded


@pytest.mark.parametrize("batch_threads", [1, 2])
def test_concurrent_requests_share_batches_and_get_the_same_answers(model, batch_threads) -> None:  # type: ignore[no-untyped-def]
    batcher = MicroBatcher(max_batch=32, threads=batch_threads)
    requests = [(m, 1 + i % 4, None) for i, m in enumerate(MESSAGES * 4)]
    expected = [model.suggest(m, k=k, niche=n) for m, k, n in requests]
    answers: list[Any] = [None] * len(requests)
    start = threading.Barrier(len(requests))

    def call(i: int) -> None:
        message, k, niche = requests[i]
        start.wait()
        answers[i] = batcher.suggest(model, message, k, niche)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    # Batched inference pads texts together, which moves scores in the sixth decimal only.
    assert [[s.reply_id for s in a] for a in answers] == [[s.reply_id for s in e] for e in expected]
    for got, want in zip(answers, expected, strict=True):
        assert [s.score for s in got] == pytest.approx([s.score for s in want], abs=1e-4)
    assert batcher.requests == len(requests)
    assert batcher.batches < len(requests)


def test_a_lone_request_is_answered_alone(model) -> None:  # type: ignore[no-untyped-def]
    batcher = MicroBatcher()
    assert batcher.suggest(model, "Hello", 3, None) == model.suggest("Hello", k=3)
    assert (batcher.batches, batcher.requests) == (1, 1)


def test_a_failing_model_fails_only_its_requests(model) -> None:  # type: ignore[no-untyped-def]
    class Broken:
        def suggest_many(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("index unavailable")

    batcher = MicroBatcher()
    with pytest.raises(RuntimeError, match="index unavailable"):
        batcher.suggest(Broken(), "Hello", 3, None)  # type: ignore[arg-type]
    assert batcher.suggest(model, "Hello", 3, None) == model.suggest("Hello", k=3)


class HeldModel:
    """The real model, whose passes wait while ``hold`` is clear: requests sent meanwhile
    queue up and are then answered together in one batch (synchronisation, not a stand-in)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.entered = threading.Event()
        self.hold = threading.Event()
        self.passes: list[list[str]] = []

    def suggest_many(self, messages: list[str], **kwargs: Any) -> Any:
        self.entered.set()
        self.hold.wait(30)
        self.passes.append(list(messages))
        return self.model.suggest_many(messages, **kwargs)


def test_a_request_the_encoder_cannot_take_fails_alone_not_its_batch(model) -> None:  # type: ignore[no-untyped-def]
    held = HeldModel(model)
    batcher = MicroBatcher(max_batch=32, threads=1)
    # A lone surrogate cannot be encoded (the API refuses it first; here it reaches the model).
    requests = ["Hello", *MESSAGES, "hi \ud800", "What is AI?", "bye \udcff"]
    answers: dict[int, Any] = {}

    def call(i: int) -> None:
        try:
            answers[i] = batcher.suggest(held, requests[i], 3, None)  # type: ignore[arg-type]
        except UnicodeError as exc:
            answers[i] = exc

    first = threading.Thread(target=call, args=(0,))
    first.start()
    assert held.entered.wait(30)  # the first request's pass has started and waits for `hold`
    rest = [threading.Thread(target=call, args=(i,)) for i in range(1, len(requests))]
    for thread in rest:
        thread.start()
    while batcher._queue.qsize() < len(rest):
        time.sleep(0.01)
    held.hold.set()
    for thread in [first, *rest]:
        thread.join(30)
    # The ten others shared a pass with the two bad ones, and each was then answered alone.
    assert held.passes[1] == requests[1:]
    assert batcher.retried == len(rest)
    for i, message in enumerate(requests):
        if "\ud800" in message or "\udcff" in message:
            assert isinstance(answers[i], UnicodeEncodeError)
        else:
            assert answers[i] == model.suggest(message, k=3), message
