"""Test doubles shared by several test modules: time that moves only when told."""

from __future__ import annotations


class FakeClock:
    """A monotonic clock and a wall clock that advance together, only through `advance()`."""

    def __init__(self, start: float = 1_000.0, wall_start: float = 1_767_225_600.0) -> None:
        self.now = start
        self._wall_offset = wall_start - start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def wall(self) -> float:
        return self.now + self._wall_offset

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def sleep(self, seconds: float) -> None:
        """An injectable `sleep` that records the wait and moves time instead of waiting."""
        self.sleeps.append(seconds)
        self.now += seconds
