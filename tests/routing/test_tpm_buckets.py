"""Tokens-per-minute buckets: weighted takes, charges and refunds, in memory and in Redis,
where every process shares one bucket."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.store.redis.store import RedisStore
from resilience.routing.ratelimit import RateLimits
from tests.support.clock import FakeClock
from tests.support.servers import until

KEY = ("acme", "primary")


def test_a_take_needs_the_whole_estimate_and_the_wait_says_when_it_is_there() -> None:
    clock = FakeClock()
    limits = RateLimits(clock=clock)
    assert limits.take(KEY, 1000, 400) and limits.take(KEY, 1000, 400)
    assert not limits.take(KEY, 1000, 400)  # 200 left
    assert limits.wait_s(KEY, 400) == pytest.approx(12.0)  # 200 more at 1000/60 a second
    clock.advance(11.9)
    assert not limits.take(KEY, 1000, 400)
    clock.advance(0.2)
    assert limits.take(KEY, 1000, 400)


def test_an_estimate_over_the_limit_waits_for_a_full_bucket() -> None:
    clock = FakeClock()
    limits = RateLimits(clock=clock)
    assert limits.take(KEY, 1000, 5000)  # a full bucket lets it go
    assert not limits.take(KEY, 1000, 5000)
    assert limits.wait_s(KEY, 5000) == pytest.approx(60.0)


def test_charges_go_into_debt_and_refunds_stop_at_full() -> None:
    clock = FakeClock()
    limits = RateLimits(clock=clock)
    assert limits.take(KEY, 1000, 100)
    limits.charge(KEY, 1000, 5000)  # reported far more than estimated: a minute of debt at most
    assert limits.wait_s(KEY, 1) == pytest.approx(60.06)
    limits.charge(KEY, 1000, -10_000)  # given back: never more than a full bucket
    assert limits.wait_s(KEY, 1000) == 0.0
    assert limits.take(KEY, 1000, 1000) and not limits.take(KEY, 1000, 1)


def test_zero_is_unlimited_and_an_unknown_bucket_has_no_wait() -> None:
    limits = RateLimits(clock=FakeClock())
    assert all(limits.take(KEY, 0, 10**9) for _ in range(10))
    limits.charge(KEY, 0, 10**9)
    assert limits.wait_s(("other", "p"), 500) == 0.0


@asynccontextmanager
async def stores(
    url: str, prefix: str, n: int, clock: FakeClock
) -> AsyncIterator[list[RedisStore]]:
    made = [
        RedisStore(
            url,
            policy_for=lambda _: BreakerPolicy(),
            emit=lambda _: None,
            clock=clock,
            wall_clock=clock.wall,
            prefix=prefix,
            script_clock=clock,
        )
        for _ in range(n)
    ]
    for store in made:
        await store.start()
        await until(lambda s=store: s.online, timeout_s=10.0, every_s=0.01)  # type: ignore[misc]
    try:
        yield made
    finally:
        for store in made:
            await store.aclose()


@pytest.mark.redis
async def test_two_stores_share_one_bucket_its_charges_and_refunds(
    redis_url: str, prefix: str
) -> None:
    clock = FakeClock()
    async with stores(redis_url, prefix, 2, clock) as (a, b):
        assert await a.atake_tpm(KEY, 1000, 400)
        assert await b.atake_tpm(KEY, 1000, 400)
        assert not await a.atake_tpm(KEY, 1000, 400)  # the other process took its share
        assert a.tpm_wait_s(KEY, 400) == pytest.approx(12.0)
        b.charge_tpm(KEY, 1000, -300)  # b's call reported 100 of its 400
        await b.flush()
        assert await a.atake_tpm(KEY, 1000, 400)
        a.charge_tpm(KEY, 1000, 2000)  # a's reported 2,400: debt
        await a.flush()
        assert not await b.atake_tpm(KEY, 1000, 1)
        clock.advance(60)  # a minute's refill pays a minute of debt, no more
        assert not await b.atake_tpm(KEY, 1000, 1)
        clock.advance(60)
        assert await b.atake_tpm(KEY, 1000, 1000)


@pytest.mark.redis
async def test_many_concurrent_takes_over_four_stores_get_exactly_the_bucket(
    redis_url: str, prefix: str
) -> None:
    clock = FakeClock()
    async with stores(redis_url, prefix, 4, clock) as fleet:
        taken = await asyncio.gather(*(fleet[i % 4].atake_tpm(KEY, 5000, 100) for i in range(200)))
        assert sum(taken) == 50
        # the rpm buckets of the same key are others: untouched
        assert await fleet[0].atake_token(KEY, 1)
