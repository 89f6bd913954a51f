"""Requests- and tokens-per-minute limits as token buckets, so the client skips a spent key
up front.

A bucket for a limit of `L` per minute holds at most `L` (one minute's allowance, the
burst) and refills continuously at `L / 60` per second; it starts full.

- rpm: a call takes one. With none left the client skips that target, instead of
  spending a call to learn of a 429. So over any span of `t` seconds at most
  `rpm + rpm * t / 60` calls go out: 100 calls in one second against `rpm = 60` send at
  most 61.
- tpm: a call is admitted on an estimate of its tokens (its prompt's size and its
  `max_tokens`; `resilience.usage.estimate`), taken only when the bucket holds that much
  (at most the bucket's size, so a call larger than a minute's allowance waits for a
  full bucket instead of never going). When the attempt ends, `charge` settles it with
  what the provider reported: the difference is taken (the bucket may go into debt, down
  to minus one minute's allowance, which holds the next calls back until it is paid) or
  given back; a failed attempt gives the whole estimate back.

Buckets are keyed like breakers: `(tenant, provider)` for a tenant's own limit,
`("*", provider)` for the provider's. They live in the breaker store, so a shared store
shares them across processes. An rpm bucket idle for a minute is full (a tpm bucket, which
may be in debt, for two), so forgetting it changes nothing: idle buckets are dropped in two
generations (`resilience.idle`), like idle breakers.
"""

from __future__ import annotations

import time

from resilience.idle import IdleMap
from resilience.types import BreakerKey, Clock

WINDOW_S = 60.0


class TokenBucket:
    __slots__ = ("limit", "tokens", "updated")

    def __init__(self, limit: float, now: float) -> None:
        self.limit = limit
        self.tokens = limit
        self.updated = now

    def _refill(self, now: float) -> None:
        elapsed = now - self.updated
        if elapsed > 0:
            self.tokens = min(self.limit, self.tokens + elapsed * self.limit / WINDOW_S)
            self.updated = now

    def take(self, now: float, n: float = 1.0) -> bool:
        """Take `n` (at most the bucket's size) if the bucket holds that much."""
        self._refill(now)
        n = min(n, self.limit)
        if self.tokens >= n:
            self.tokens -= n
            return True
        return False

    def charge(self, now: float, n: float) -> None:
        """Take `n` whatever the bucket holds (a refund when negative), kept within
        minus one and plus one minute's allowance."""
        self._refill(now)
        self.tokens = max(-self.limit, min(self.limit, self.tokens - n))

    def wait_s(self, now: float, n: float = 1.0) -> float:
        """Seconds until the bucket will hold `n` (at most its size)."""
        tokens = min(self.limit, self.tokens + max(0.0, now - self.updated) * self.limit / WINDOW_S)
        n = min(n, self.limit)
        return 0.0 if tokens >= n else (n - tokens) * WINDOW_S / self.limit


class RateLimits:
    """Token buckets by key, in this process's memory (the `MemoryStore`'s)."""

    def __init__(self, *, clock: Clock = time.monotonic, idle_s: float = WINDOW_S) -> None:
        """`idle_s`: how long a bucket untouched is surely full (a minute for rpm buckets,
        two for tpm ones, which may be in debt)."""
        self._clock = clock
        self._buckets: IdleMap[BreakerKey, TokenBucket] = IdleMap(idle_s, clock=clock)

    def _bucket(self, key: BreakerKey, limit: float, now: float) -> TokenBucket:
        bucket = self._buckets.current.get(key)
        if bucket is None:
            bucket = self._buckets.find(key)
            if bucket is None:
                bucket = TokenBucket(limit, now)
                self._buckets.put(key, bucket)
        if bucket.limit != limit:  # the limit was changed: keep the tokens, capped
            bucket.limit = limit
            bucket.tokens = min(bucket.tokens, limit)
        return bucket

    def take(self, key: BreakerKey, limit: float, n: float = 1.0) -> bool:
        """Take `n` from `key`'s bucket for `limit` per minute; `limit <= 0` is unlimited."""
        if limit <= 0:
            return True
        now = self._clock()
        return self._bucket(key, limit, now).take(now, n)

    def charge(self, key: BreakerKey, limit: float, n: float) -> None:
        """Settle a weighted take: `n` more (or, negative, given back)."""
        if limit <= 0 or not n:
            return
        now = self._clock()
        self._bucket(key, limit, now).charge(now, n)

    def wait_s(self, key: BreakerKey, n: float = 1.0) -> float:
        """Seconds until `key`'s bucket holds `n`; 0 for a bucket not held."""
        bucket = self._buckets.peek(key)
        return bucket.wait_s(self._clock(), n) if bucket is not None else 0.0

    def __len__(self) -> int:
        return len(self._buckets)
