"""`SlidingCount`: events in the last `window_s` seconds, in O(1) time and fixed memory.

Cumulative count plus a mark at the start of each of ten buckets: an event
counts for between 0.9 and 1.0 times `window_s`. (The breaker inlines the same
scheme in its hot path rather than paying a method call per request.)
"""

from __future__ import annotations

import math

from resilience.types import Clock

BUCKETS = 10


class SlidingCount:
    __slots__ = ("_bucket", "_clock", "_marks", "_total", "_width")

    def __init__(self, window_s: float, clock: Clock) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s: must be > 0, got {window_s!r}")
        self._clock = clock
        self._width = window_s / BUCKETS
        self._bucket = math.floor(clock() / self._width)
        self._total = 0
        self._marks = [0] * BUCKETS

    def add(self, n: int = 1) -> None:
        self._roll()
        self._total += n

    def count(self) -> int:
        self._roll()
        return self._total - self._marks[(self._bucket + 1) % BUCKETS]

    def _roll(self) -> None:
        bucket = math.floor(self._clock() / self._width)
        steps = bucket - self._bucket
        if steps <= 0:
            return
        for b in range(self._bucket + 1, self._bucket + 1 + min(steps, BUCKETS)):
            self._marks[b % BUCKETS] = self._total
        self._bucket = bucket
