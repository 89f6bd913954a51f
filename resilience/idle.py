"""`IdleMap`: a dict that forgets entries nobody touched, with O(1) work per lookup.

It keeps two generations. A lookup hits the current one; an entry found only in the
previous one is moved forward. Once `ttl_s` has passed on the injected clock since the
last turn, the previous generation is dropped and the current one becomes previous, so an
entry untouched for between one and two `ttl_s` is forgotten, with no sweep over every
entry. Pinned entries are never forgotten: each new generation starts with them.

The breaker store (breakers, pinned while not closed), the retry budgets and the
rate-limit buckets keep their entries this way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from resilience.types import Clock

K = TypeVar("K")
V = TypeVar("V")


class IdleMap(Generic[K, V]):
    """Entries by key, forgotten after one to two `ttl_s` without a lookup.

    The hot path reads `current` directly (`idle.current.get(key)`, one dict lookup) and
    calls `find` only on a miss, then `put` if the key had no entry at all.
    """

    __slots__ = ("_clock", "_pinned", "_previous", "_ttl_s", "_turn_at", "current")

    def __init__(self, ttl_s: float, *, clock: Clock) -> None:
        if not ttl_s > 0:
            raise ValueError(f"ttl_s: must be > 0, got {ttl_s!r}")
        self._clock = clock
        self._ttl_s = ttl_s
        self.current: dict[K, V] = {}
        self._previous: dict[K, V] = {}
        self._pinned: dict[K, V] = {}
        self._turn_at = clock() + ttl_s

    def find(self, key: K) -> V | None:
        """The entry from any generation, moved into the current one; the generations turn
        first if they are due. None if the key has no entry."""
        now = self._clock()
        if now >= self._turn_at:
            self._turn(now)
        value = self.current.get(key)
        if value is None:
            value = self._previous.pop(key, None)
            if value is None:
                value = self._pinned.get(key)
                if value is None:
                    return None
            self.current[key] = value
        return value

    def put(self, key: K, value: V) -> None:
        """Hold `value` under `key` in the current generation."""
        self.current[key] = value

    def peek(self, key: K) -> V | None:
        """The entry if it is held, without moving it or turning the generations."""
        value = self.current.get(key)
        if value is None:
            value = self._previous.get(key)
            if value is None:
                value = self._pinned.get(key)
        return value

    def pin(self, key: K, value: V) -> None:
        """Never forget this entry, until `unpin`."""
        self._pinned[key] = value

    def unpin(self, key: K) -> None:
        """Let a pinned entry go idle again (it is forgotten like any other)."""
        self._pinned.pop(key, None)

    def turn_if_due(self) -> int:
        """Turn the generations if `ttl_s` has passed since the last turn; returns how many
        entries were forgotten."""
        now = self._clock()
        if now < self._turn_at:
            return 0
        current, pinned = self.current, self._pinned
        dropped = sum(1 for key in self._previous if key not in current and key not in pinned)
        self._turn(now)
        return dropped

    def values(self) -> Iterator[V]:
        """Every entry held, once each: pinned first, then current, then previous."""
        seen: set[K] = set()
        for generation in (self._pinned, self.current, self._previous):
            for key, value in generation.items():
                if key not in seen:
                    seen.add(key)
                    yield value

    def __len__(self) -> int:
        return len(self.current.keys() | self._previous.keys() | self._pinned.keys())

    def _turn(self, now: float) -> None:
        self._previous = self.current
        self.current = dict(self._pinned)
        self._turn_at = now + self._ttl_s
