"""A shared store's local views of idle breakers go on time; open ones stay (Redis keeps the
shared state either way)."""

from __future__ import annotations

import pytest

from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from resilience.breaker.store.redis.store import RedisStore
from tests.breaker.store.redis.test_store import fail
from tests.support.clock import FakeClock

pytestmark = pytest.mark.redis

TTL = 300.0


async def test_listing_drops_idle_local_views_and_keeps_open_ones(
    redis_url: str, prefix: str
) -> None:
    clock = FakeClock()
    reg = BreakerRegistry(
        policy=BreakerPolicy(provider_wide_min_tenants=0),
        clock=clock,
        wall_clock=clock.wall,
        idle_ttl_s=TTL,
        redis_url=redis_url,
        redis_prefix=prefix,
    )
    store = reg.store
    assert isinstance(store, RedisStore)
    await reg.start()
    try:
        assert store.online
        quiet = reg.get("quiet", "p")
        quiet.record_success(quiet.acquire())
        for _ in range(5):
            await fail(reg.get("broken", "p"))
        await store.flush()
        await reg.aforce_open("locked", "p")
        for _ in range(2):
            clock.advance(TTL + 1)
            reg.circuits()  # no lookup, no new pair
        assert store.peek("quiet", "p") is None
        kept = {s.tenant: s.state.value for s in reg.circuits() if s.tenant != "*"}
        assert kept == {"broken": "half_open", "locked": "forced_open"}
    finally:
        await reg.aclose()
