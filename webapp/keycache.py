"""API keys verified recently, kept for a few seconds in each web process."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Generic
from typing import TypeVar

from core.keys import token_digest

T = TypeVar("T")


class KeyCache(Generic[T]):
    """Keys verified in the last ``seconds``, so that a suggestion does not pay a database
    round trip for its key (the serving benchmark's hot path).

    The price: a revoked key keeps working for at most ``seconds`` in a web process that
    verified it just before. Unknown keys are never remembered, so a flood of forged keys
    cannot fill memory, and tokens are held only as their SHA-256 digests.
    """

    def __init__(
        self, seconds: float, size: int = 10_000, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.seconds = seconds
        self._size = size
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, T]] = OrderedDict()
        self._lock = threading.Lock()

    def verify(self, token: str, find: Callable[[str], T | None]) -> T | None:
        digest = token_digest(token)
        now = self._clock()
        with self._lock:
            hit = self._entries.get(digest)
            if hit is not None and now - hit[0] < self.seconds:
                return hit[1]
        caller = find(token)
        with self._lock:
            if caller is None:
                self._entries.pop(digest, None)
            elif self.seconds > 0:
                self._entries[digest] = (now, caller)
                self._entries.move_to_end(digest)
                while len(self._entries) > self._size:
                    self._entries.popitem(last=False)
        return caller
