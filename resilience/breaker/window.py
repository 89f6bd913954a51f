"""Counts of events in the last `window_s` seconds, in O(1) time and a few bytes.

The window is ten buckets of `window_s / 10` seconds, aligned on multiples of the bucket
width; an event counts for between 0.9 and 1.0 times `window_s`. The current bucket's count
is a plain int (counting an event is `+= 1`, as cheap as a counter gets); the nine buckets
before it are packed into one more int, the most recent in the lowest `FIELD_BITS` bits, and
moving to a later bucket is a shift. A window with no event before the current bucket holds
two small ints and allocates nothing for fewer than 257 events, so an object that never
leaves its first bucket pays nothing for its window; nine full earlier buckets take an int
of at most 80 bytes. A bucket holds fewer than 2**48 events.

`SlidingCount` is a window with its own clock; the breaker keeps the same two ints per count
in its own slots and calls `rolled` and `total`, rather than paying for an object per breaker.
"""

from __future__ import annotations

import math

from resilience.types import Clock

BUCKETS = 10
FIELD_BITS = 48
_FIELD = (1 << FIELD_BITS) - 1
_PAST = (1 << (FIELD_BITS * (BUCKETS - 1))) - 1


def rolled(past: int, current: int, steps: int) -> int:
    """The earlier buckets' packed counts `steps` buckets later: the current bucket's
    `current` events join them, and buckets that leave the window drop out."""
    if steps <= 0:
        return past
    if steps >= BUCKETS:
        return 0
    return (((past << FIELD_BITS) | current) << (FIELD_BITS * (steps - 1))) & _PAST


def total(past: int) -> int:
    """The events of the earlier buckets: the sum of the packed counts."""
    count = 0
    while past:
        count += past & _FIELD
        past >>= FIELD_BITS
    return count


class SlidingCount:
    """Events in the last `window_s` seconds of `clock`."""

    __slots__ = ("_bucket", "_clock", "_current", "_past", "_width")

    def __init__(self, window_s: float, clock: Clock) -> None:
        if not window_s > 0:
            raise ValueError(f"window_s: must be > 0, got {window_s!r}")
        self._clock = clock
        self._width = window_s / BUCKETS
        self._bucket = math.floor(clock() / self._width)
        self._current = 0
        self._past = 0

    def add(self, n: int = 1) -> None:
        self._roll()
        self._current += n

    def count(self) -> int:
        self._roll()
        return self._current + total(self._past)

    def _roll(self) -> None:
        bucket = math.floor(self._clock() / self._width)
        steps = bucket - self._bucket
        if steps <= 0:
            return
        self._past = rolled(self._past, self._current, steps)
        self._current = 0
        self._bucket = bucket
