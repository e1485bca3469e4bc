"""Micro-batching answers exactly what the model answers alone, in fewer encoder passes."""

from __future__ import annotations

import threading
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
