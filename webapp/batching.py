"""Request micro-batching: concurrent suggestion requests share one encoder pass.

Each request thread hands its message to one batching thread and waits. That thread takes
the first waiting request at once (a lone request never waits for company), then everything
else already queued, up to ``max_batch``, and answers them with one ``suggest_many`` call.
Under load, requests pile up while a batch is being encoded, so batches grow exactly when
they pay off.
"""

from __future__ import annotations

import queue
import threading
from concurrent.futures import Future
from dataclasses import dataclass
from dataclasses import field

from models.suggester import Suggestion
from models.suggester import SuggestionModel


@dataclass
class _Request:
    model: SuggestionModel
    message: str
    k: int
    niche: str | None
    future: Future[list[Suggestion]] = field(default_factory=Future)


class MicroBatcher:
    """Answers ``suggest`` calls from many threads in shared batches.

    Args:
        max_batch: most requests answered by one encoder pass.
    """

    def __init__(self, max_batch: int = 32) -> None:
        self.max_batch = max_batch
        self._queue: queue.SimpleQueue[_Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.batches = 0
        self.requests = 0

    def suggest(
        self, model: SuggestionModel, message: str, k: int, niche: str | None
    ) -> list[Suggestion]:
        request = _Request(model, message, k, niche)
        self._ensure_thread()
        self._queue.put(request)
        return request.future.result()

    def _ensure_thread(self) -> None:
        # Started on first use, so a forked gunicorn worker gets its own thread.
        if self._thread is None or not self._thread.is_alive():
            with self._lock:
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="suggest-batcher", daemon=True
                    )
                    self._thread.start()

    def _run(self) -> None:
        while True:
            batch = [self._queue.get()]
            while len(batch) < self.max_batch:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self._answer(batch)

    def _answer(self, batch: list[_Request]) -> None:
        # Requests that arrived across a model swap are answered by the model each one saw.
        by_model: dict[int, list[_Request]] = {}
        for request in batch:
            by_model.setdefault(id(request.model), []).append(request)
        for group in by_model.values():
            try:
                # A diverse top-k is the prefix of a diverse top-K for K > k (greedy).
                answers = group[0].model.suggest_many(
                    [r.message for r in group],
                    k=max(r.k for r in group),
                    niches=[r.niche for r in group],
                )
            except BaseException as exc:
                for request in group:
                    request.future.set_exception(exc)
                continue
            for request, answer in zip(group, answers, strict=True):
                request.future.set_result(answer[: request.k])
        self.batches += 1
        self.requests += len(batch)
