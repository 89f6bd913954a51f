"""Requests-per-minute limits as token buckets, so the client skips a spent key up front.

A bucket for `rpm` holds at most `rpm` tokens (one minute's allowance, the burst) and
refills continuously at `rpm / 60` per second; it starts full. A call takes one token;
with none left the client skips that target, instead of spending a call to learn of a 429.
So over any span of `t` seconds at most `rpm + rpm * t / 60` calls go out: 100 calls in
one second against `rpm = 60` send at most 61.

Buckets are keyed like breakers: `(tenant, provider)` for a tenant's own limit,
`("*", provider)` for the provider's. They live in the breaker store, so a shared store
shares them across processes. A bucket idle for a minute is full, so forgetting it
changes nothing: idle buckets are dropped in two generations (`resilience.idle`), like
idle breakers.
"""

from __future__ import annotations

import time

from resilience.idle import IdleMap
from resilience.types import BreakerKey, Clock

WINDOW_S = 60.0


class TokenBucket:
    __slots__ = ("rpm", "tokens", "updated")

    def __init__(self, rpm: float, now: float) -> None:
        self.rpm = rpm
        self.tokens = rpm
        self.updated = now

    def take(self, now: float) -> bool:
        """Take one token if there is one."""
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.rpm, self.tokens + elapsed * self.rpm / WINDOW_S)
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def wait_s(self, now: float) -> float:
        """Seconds until a token will be there."""
        tokens = min(self.rpm, self.tokens + max(0.0, now - self.updated) * self.rpm / WINDOW_S)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) * WINDOW_S / self.rpm


class RateLimits:
    """Token buckets by key, in this process's memory (the `MemoryStore`'s)."""

    def __init__(self, *, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: IdleMap[BreakerKey, TokenBucket] = IdleMap(WINDOW_S, clock=clock)

    def take(self, key: BreakerKey, rpm: float) -> bool:
        """Take a token from `key`'s bucket for `rpm`; `rpm <= 0` means unlimited."""
        if rpm <= 0:
            return True
        now = self._clock()
        bucket = self._buckets.current.get(key)
        if bucket is None:
            bucket = self._buckets.find(key)
            if bucket is None:
                bucket = TokenBucket(rpm, now)
                self._buckets.put(key, bucket)
        if bucket.rpm != rpm:  # the limit was changed: keep the tokens, capped
            bucket.rpm = rpm
            bucket.tokens = min(bucket.tokens, rpm)
        return bucket.take(now)

    def wait_s(self, key: BreakerKey) -> float:
        """Seconds until `key`'s bucket has a token; 0 for a bucket not held."""
        bucket = self._buckets.peek(key)
        return bucket.wait_s(self._clock()) if bucket is not None else 0.0

    def __len__(self) -> int:
        return len(self._buckets)
