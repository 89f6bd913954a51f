"""Token buckets: burst, refill, limits changed at run time, idle buckets forgotten."""

from __future__ import annotations

import pytest

from resilience.breaker.registry import BreakerRegistry
from resilience.routing.ratelimit import RateLimits
from tests.support.clock import FakeClock


def test_a_full_bucket_allows_rpm_at_once_then_refills_continuously() -> None:
    clock = FakeClock()
    limits = RateLimits(clock=clock)
    key = ("t", "p")
    assert sum(limits.take(key, 60) for _ in range(100)) == 60
    assert limits.wait_s(key) == pytest.approx(1.0)
    clock.advance(0.5)
    assert not limits.take(key, 60)
    clock.advance(0.5)
    assert limits.take(key, 60)
    clock.advance(3600)
    assert sum(limits.take(key, 60) for _ in range(100)) == 60  # never more than the burst


def test_zero_means_unlimited_and_buckets_are_per_key() -> None:
    limits = RateLimits(clock=FakeClock())
    assert all(limits.take(("t", "p"), 0) for _ in range(1000))
    assert sum(limits.take(("t1", "p"), 2) for _ in range(5)) == 2
    assert sum(limits.take(("t2", "p"), 2) for _ in range(5)) == 2


def test_a_lowered_limit_caps_the_tokens_left() -> None:
    limits = RateLimits(clock=FakeClock())
    limits.take(("t", "p"), 100)
    assert sum(limits.take(("t", "p"), 3) for _ in range(10)) == 3


def test_idle_buckets_are_forgotten_and_come_back_full() -> None:
    clock = FakeClock()
    limits = RateLimits(clock=clock)
    for i in range(100):
        limits.take((f"t{i}", "p"), 10)
    assert len(limits) == 100
    clock.advance(61)
    limits.take(("x", "p"), 10)
    clock.advance(61)
    limits.take(("y", "p"), 10)
    assert len(limits) == 2  # x (previous generation) and y
    assert sum(limits.take(("t0", "p"), 10) for _ in range(20)) == 10


def test_the_registrys_store_holds_the_buckets() -> None:
    registry = BreakerRegistry(clock=FakeClock())
    assert sum(registry.store.take_token(("t", "p"), 5) for _ in range(9)) == 5
    assert registry.store.token_wait_s(("t", "p")) == pytest.approx(12.0)
