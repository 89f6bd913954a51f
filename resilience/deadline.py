"""`Deadline`: one point in time that bounds a whole request, across every target."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from resilience.types import Clock


@dataclass(frozen=True, slots=True)
class Deadline:
    """An absolute time on `clock`; moving to a fallback target never resets it."""

    at: float
    clock: Clock = field(default=time.monotonic, repr=False, compare=False)

    @classmethod
    def after(cls, seconds: float, *, clock: Clock = time.monotonic) -> Deadline:
        if not seconds > 0:
            raise ValueError(f"deadline seconds: must be > 0, got {seconds!r}")
        return cls(clock() + seconds, clock)

    @classmethod
    def never(cls, *, clock: Clock = time.monotonic) -> Deadline:
        return cls(math.inf, clock)

    def remaining(self) -> float:
        """Seconds left, never negative."""
        return max(0.0, self.at - self.clock())

    @property
    def expired(self) -> bool:
        return self.clock() >= self.at

    def fits(self, seconds: float) -> bool:
        """Whether waiting `seconds` still leaves time before the deadline."""
        return seconds < self.remaining()
