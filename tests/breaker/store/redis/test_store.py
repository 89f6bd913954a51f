"""`RedisStore` against the real Redis: several stores stand for several processes.

Each store has its own connections, subscription and local views, exactly as a
process would; `test_processes.py` repeats the key cases with real processes.
Cooldowns are timed by the Redis server's clock (`TIME`), which a test cannot
move, so the few cooldowns here are a fraction of a second.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress

import pytest
import redis.asyncio as aioredis

from resilience.breaker.events import BreakerState, MemorySink, TransitionReason
from resilience.breaker.machine import ASK_STORE, CircuitBreaker, Permit
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from resilience.breaker.store.redis.store import RedisStore, SharedBreaker, redact
from resilience.errors import CircuitOpenError, ErrorKind
from tests.support.servers import redis_server, until

pytestmark = pytest.mark.redis

FAIL = ErrorKind.SERVER_ERROR
POLICY = BreakerPolicy(provider_wide_min_tenants=0)


class Fleet:
    """Registries on one Redis namespace, each with its own audit sink: one per "process"."""

    def __init__(self, registries: list[BreakerRegistry], sinks: list[MemorySink]) -> None:
        self.registries = registries
        self.sinks = sinks

    def store(self, i: int) -> RedisStore:
        store = self.registries[i].store
        assert isinstance(store, RedisStore)
        return store

    def breaker(self, i: int, tenant: str = "t1", provider: str = "p") -> CircuitBreaker:
        return self.registries[i].get(tenant, provider)

    def events(self) -> list[tuple[int, TransitionReason]]:
        """(store index, reason) of every audit event emitted, in each store's order."""
        return [(i, e.reason) for i, sink in enumerate(self.sinks) for e in sink.events]

    async def settle(self) -> None:
        for i in range(len(self.registries)):
            await self.store(i).flush()

    async def trip(self, i: int = 0, tenant: str = "t1") -> None:
        """Five failures (the threshold) through store `i`, answered by Redis."""
        for _ in range(5):
            await fail(self.breaker(i, tenant))
        await self.settle()


@asynccontextmanager
async def fleet(
    url: str, prefix: str, n: int, policy: BreakerPolicy = POLICY, **store: float
) -> AsyncIterator[Fleet]:
    sinks = [MemorySink() for _ in range(n)]
    registries = [
        BreakerRegistry(policy=policy, sinks=[s], redis_url=url, redis_prefix=prefix) for s in sinks
    ]
    for registry in registries:
        assert isinstance(registry.store, RedisStore)
        for name, value in store.items():
            setattr(registry.store, f"_{name}", value)
        await registry.start()
    try:
        yield Fleet(registries, sinks)
    finally:
        for registry in registries:
            await registry.aclose()


async def admit(breaker: CircuitBreaker) -> Permit:
    """What `resilience.client.attempt` does before a call."""
    permit = breaker.acquire()
    if permit is ASK_STORE:
        permit = await breaker.admit()
    return permit


async def fail(breaker: CircuitBreaker, kind: ErrorKind = FAIL) -> None:
    breaker.record_failure(await admit(breaker), kind)


async def until_gone(client: aioredis.Redis, key: str) -> None:
    """Redis expires keys on its own clock: poll for it (at most 5 s)."""

    async def gone() -> bool:
        return not await client.exists(key)

    await until(gone, every_s=0.05)


async def test_failures_spread_over_two_stores_trip_the_breaker_once(
    redis_url: str, prefix: str
) -> None:
    async with fleet(redis_url, prefix, 2) as f:
        for i in range(5):
            await fail(f.breaker(i % 2))
            await f.store(i % 2).flush()
        await until(lambda: f.breaker(0).state is f.breaker(1).state is BreakerState.OPEN)
        # the fifth failure, on store 0, tripped it: store 0 alone audits the transition
        assert f.events() == [(0, TransitionReason.THRESHOLD)]
        for i in (0, 1):
            with pytest.raises(CircuitOpenError):
                f.breaker(i).acquire()  # refused locally: no round trip


async def test_two_hundred_concurrent_failures_over_four_stores_make_one_event(
    redis_url: str, prefix: str
) -> None:
    async with fleet(redis_url, prefix, 4) as f:

        async def caller(i: int) -> None:
            with suppress(CircuitOpenError):
                await fail(f.breaker(i % 4))

        await asyncio.gather(*(caller(i) for i in range(200)))
        await f.settle()
        assert [reason for _, reason in f.events()] == [TransitionReason.THRESHOLD]
        await until(lambda: all(f.breaker(i).state is BreakerState.OPEN for i in range(4)))


async def test_failure_rate_counts_the_successes_of_every_store(
    redis_url: str, prefix: str
) -> None:
    async with fleet(redis_url, prefix, 2) as f:
        for _ in range(20):  # store 1 sees only successes
            f.breaker(1).record_success(await admit(f.breaker(1)))
        await f.store(1).flush()
        for _ in range(6):  # 6 failures of 26 calls: under the 50% rate
            await fail(f.breaker(0))
        await f.settle()
        assert f.events() == []
        for _ in range(14):  # 20 of 40: the rate is reached
            await fail(f.breaker(0))
        await f.settle()
        assert f.events() == [(0, TransitionReason.THRESHOLD)]


async def test_every_call_is_counted_once_in_redis(redis_url: str, prefix: str) -> None:
    async with fleet(redis_url, prefix, 1) as f:
        breaker = f.breaker(0)
        for _ in range(3):
            breaker.record_success(await admit(breaker))
        await fail(breaker)  # its verdict carries the three successes along
        for _ in range(2):
            breaker.record_success(await admit(breaker))
        await f.settle()
        client = aioredis.Redis.from_url(redis_url)
        fields = [f"w{c}{i}" for i in range(10) for c in "cf"]
        values = await client.hmget(f"{prefix}:b:p:t1", fields)
        await client.aclose()
        counted = dict.fromkeys("cf", 0)
        for name, value in zip(fields, values, strict=True):
            counted[name[1]] += int(value or 0)
        assert counted == {"c": 6, "f": 1}


async def test_half_open_admits_exactly_n_probes_to_100_callers_over_four_stores(
    redis_url: str, prefix: str
) -> None:
    policy = BreakerPolicy(cooldown_s=0.2, half_open_max_calls=3, provider_wide_min_tenants=0)
    async with fleet(redis_url, prefix, 4, policy) as f:
        await f.trip()
        await until(lambda: all(f.breaker(i).state is BreakerState.OPEN for i in range(4)))
        await until(lambda: f.breaker(0).state is BreakerState.HALF_OPEN, timeout_s=2)

        async def caller(i: int) -> Permit | None:
            try:
                return await admit(f.breaker(i % 4))
            except CircuitOpenError:
                return None

        permits = await asyncio.gather(*(caller(i) for i in range(100)))
        admitted = [p for p in permits if p is not None]
        assert len(admitted) == 3
        assert all(p.probe for p in admitted)
        reasons = [reason for _, reason in f.events()]
        assert reasons == [TransitionReason.THRESHOLD, TransitionReason.COOLDOWN_ELAPSED]
        # the first probe to succeed closes it, for everyone, once
        owner = permits.index(admitted[0]) % 4
        f.breaker(owner).record_success(admitted[0])
        await f.settle()
        await until(lambda: all(f.breaker(i).state is BreakerState.CLOSED for i in range(4)))
        assert [r for _, r in f.events()][-1] is TransitionReason.PROBE_SUCCEEDED
        assert len(f.events()) == 3


async def test_a_failed_probe_reopens_with_a_doubled_cooldown_everywhere(
    redis_url: str, prefix: str
) -> None:
    policy = BreakerPolicy(cooldown_s=0.2, provider_wide_min_tenants=0)
    async with fleet(redis_url, prefix, 2, policy) as f:
        await f.trip()
        await until(lambda: f.breaker(1).state is BreakerState.HALF_OPEN, timeout_s=2)
        probe = await admit(f.breaker(1))
        assert probe.probe
        f.breaker(1).record_failure(probe, FAIL)
        await f.settle()
        await until(lambda: f.breaker(0).snapshot().cooldown_s == pytest.approx(0.4))
        assert f.breaker(0).snapshot().state is BreakerState.OPEN
        assert [e for e in f.events() if e[1] is TransitionReason.PROBE_FAILED] == [
            (1, TransitionReason.PROBE_FAILED)
        ]


async def test_an_admin_reset_in_one_store_is_honoured_by_another_on_its_next_call(
    redis_url: str, prefix: str
) -> None:
    async with fleet(redis_url, prefix, 2) as f:
        await f.registries[0].aforce_open("t1", "p", actor="ops", note="maintenance")
        await until(lambda: f.breaker(1).state is BreakerState.FORCED_OPEN)  # pub/sub
        with pytest.raises(CircuitOpenError):
            await admit(f.breaker(1))
        await f.registries[0].areset("t1", "p", actor="ops")
        # store 1 asks Redis about a forced-open breaker: it admits right after the reset,
        # without waiting for the reset's message
        permit = await admit(f.breaker(1))
        assert not permit.probe
        events = [
            (i, e.reason, e.actor, dict(e.detail)) for i, s in enumerate(f.sinks) for e in s.events
        ]
        assert events == [
            (0, TransitionReason.ADMIN_OPEN, "ops", {"note": "maintenance"}),
            (0, TransitionReason.ADMIN_RESET, "ops", {}),
        ]


async def test_a_store_started_later_sees_open_breakers_and_keeps_them(
    redis_url: str, prefix: str
) -> None:
    async with fleet(redis_url, prefix, 1) as f:
        await f.trip()
        async with fleet(redis_url, prefix, 1) as later:
            breaker = later.breaker(0)
            assert breaker.state is BreakerState.OPEN
            with pytest.raises(CircuitOpenError):
                breaker.acquire()
            listed = later.registries[0].circuits(state=BreakerState.OPEN)
            assert [(s.tenant, s.provider) for s in listed] == [("t1", "p")]
        client = aioredis.Redis.from_url(redis_url)
        assert await client.hget(f"{prefix}:b:p:t1", "st") == b"open"
        await client.aclose()
        assert f.breaker(0).state is BreakerState.OPEN


async def test_the_provider_wide_gate_opens_once_when_three_tenants_trip_on_three_stores(
    redis_url: str, prefix: str
) -> None:
    policy = BreakerPolicy(provider_wide_min_tenants=3, provider_wide_streak=0)
    async with fleet(redis_url, prefix, 3, policy) as f:
        for i, tenant in enumerate(["a", "b", "c"]):
            await f.trip(i, tenant)
        gate_events = [(i, r) for i, r in f.events() if r is TransitionReason.PROVIDER_WIDE]
        assert gate_events == [(2, TransitionReason.PROVIDER_WIDE)]
        event = next(e for e in f.sinks[2].events if e.reason is TransitionReason.PROVIDER_WIDE)
        assert (event.tenant_id, event.detail["tenants"]) == ("*", ["a", "b", "c"])
        # a fourth tenant, on store 0, is refused by the gate without a call
        await until(lambda: f.registries[0].store.gate("p").state is BreakerState.OPEN)
        with pytest.raises(CircuitOpenError) as refused:
            f.breaker(0, "d").acquire()
        assert refused.value.provider_wide


async def test_a_streak_over_stores_opens_the_gate_and_successes_end_it(
    redis_url: str, prefix: str
) -> None:
    policy = BreakerPolicy(
        failure_threshold=100, provider_wide_min_tenants=3, provider_wide_streak=10
    )
    async with fleet(redis_url, prefix, 3, policy) as f:
        for n in range(9):
            await fail(f.breaker(n % 3, f"t{n % 3}"))
        await f.settle()
        ok = f.breaker(0, "t9")
        for _ in range(10):  # more successes than failures since the streak began
            ok.record_success(await admit(ok))
        await f.store(0).flush()  # the successes reach Redis: the streak starts again
        for n in range(9):
            await fail(f.breaker(n % 3, f"t{n % 3}"))
        await f.settle()
        assert f.events() == []
        await fail(f.breaker(1, "t1"))
        await f.settle()
        assert f.events() == [(1, TransitionReason.PROVIDER_WIDE)]


async def test_idle_keys_expire_and_open_ones_outlive_their_cooldown(
    redis_url: str, prefix: str
) -> None:
    client = aioredis.Redis.from_url(redis_url)
    async with fleet(redis_url, prefix, 1) as f:
        store = f.store(0)
        store._ttl = "0.3"
        await fail(f.breaker(0, "idle"))
        await store.flush()
        key = f"{prefix}:b:p:idle"
        assert 0 < await client.pttl(key) <= 300
        await f.trip(0, "down")
        # an open breaker's key lives for its cooldown (30 s) plus the idle time
        assert 30_000 < await client.pttl(f"{prefix}:b:p:down") <= 30_300
        await f.registries[0].aforce_open("t1", "p")
        assert await client.pttl(f"{prefix}:b:p:t1") == -1  # open until an admin resets it
        await until_gone(client, key)
        # the tenant comes back: its breaker starts closed, as a new one would
        breaker = f.breaker(0, "idle")
        assert breaker.state is BreakerState.CLOSED
        await fail(breaker)
        await store.flush()
        assert await client.hget(key, "st") is None  # closed: no state field, one failure
    await client.aclose()


async def test_a_cancelled_admission_gives_its_probe_back(redis_url: str, prefix: str) -> None:
    policy = BreakerPolicy(cooldown_s=0.2, provider_wide_min_tenants=0)
    async with fleet(redis_url, prefix, 1, policy) as f:
        await f.trip()
        await until(lambda: f.breaker(0).state is BreakerState.HALF_OPEN, timeout_s=2)
        task = asyncio.create_task(admit(f.breaker(0)))
        await asyncio.sleep(0)  # the script is on its way
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await f.settle()
        await asyncio.sleep(0.05)
        await f.settle()
        probe = await admit(f.breaker(0))  # the probe slot is free again
        assert probe.probe


async def test_redis_down_falls_back_to_local_breakers_and_resyncs_when_it_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="resilience.breaker.store")
    with redis_server() as server:
        async with fleet(server.url, "outage", 2, reconnect_s=0.05) as f:
            await f.trip(0, "before")
            await until(lambda: f.breaker(1, "before").state is BreakerState.OPEN)
            server.stop()
            await until(lambda: not f.store(0).online and not f.store(1).online)
            # calls go on against local breakers: a success, then a local trip
            f.breaker(0, "during").record_success(await admit(f.breaker(0, "during")))
            for _ in range(5):
                await fail(f.breaker(0, "during"))
            assert f.breaker(0, "during").state is BreakerState.OPEN
            assert f.breaker(1, "during").state is BreakerState.CLOSED  # store 1 can't know
            assert f.store(0).status()["shared"] is False
            warnings = [r for r in caplog.records if "process-local" in r.getMessage()]
            assert len(warnings) == 2  # once per store, not once per call
            server.start()
            await until(lambda: f.store(0).online and f.store(1).online)
            assert f.store(0).status()["resyncs"] == 1
            # the restarted Redis was empty: the stores pushed what they held, so the breaker
            # store 0 opened alone is now shared, and the one opened before is still open
            await until(lambda: f.breaker(1, "during").state is BreakerState.OPEN)
            assert f.breaker(1, "before").state is BreakerState.OPEN
            client = aioredis.Redis.from_url(server.url)
            assert await client.hget("outage:b:p:during", "st") == b"open"
            await client.aclose()
            reasons = [r for _, r in f.events()]
            assert reasons == [TransitionReason.THRESHOLD, TransitionReason.THRESHOLD]


async def test_rate_limit_buckets_are_shared_by_every_store(redis_url: str, prefix: str) -> None:
    async with fleet(redis_url, prefix, 2) as f:
        taken = [await f.store(i % 2).atake_token(("t1", "p"), 60) for i in range(100)]
        # a full bucket of 60, refilled at one a second while this runs (well under a second)
        assert 60 <= sum(taken) <= 61
        assert taken[:60] == [True] * 60
        assert 0 < f.store(0).token_wait_s(("t1", "p")) <= 1.0
        assert await f.store(1).atake_token(("t2", "p"), 60)  # another key: its own bucket


async def test_rate_limits_fall_back_to_each_process_while_redis_is_down() -> None:
    with redis_server() as server:
        async with fleet(server.url, "rates", 1, reconnect_s=60) as f:
            store = f.store(0)
            assert sum([await store.atake_token(("t", "p"), 5) for _ in range(5)]) == 5
            server.stop()
            # Redis's bucket is empty, this process's own is full: requests go on
            assert sum([await store.atake_token(("t", "p"), 5) for _ in range(9)]) == 5
            assert not store.online


def test_the_url_shown_has_no_password() -> None:
    assert redact("redis://:s3cret@cache:6379/0") == "redis://:***@cache:6379/0"
    assert redact("redis://user:s3cret@cache/1") == "redis://user:***@cache/1"
    assert redact("redis://cache:6379/0") == "redis://cache:6379/0"


def test_shared_breakers_are_breakers() -> None:
    assert issubclass(SharedBreaker, CircuitBreaker)


async def test_a_shared_breaker_refuses_a_sync_admin_change_that_would_stay_local(
    redis_url: str, prefix: str
) -> None:
    async with fleet(redis_url, prefix, 2) as f:
        breaker = f.breaker(0)
        with pytest.raises(TypeError, match="aforce_open"):
            breaker.force_open(actor="ops")
        with pytest.raises(TypeError, match="areset"):
            breaker.reset(actor="ops")
        assert breaker.state is BreakerState.CLOSED
        assert f.events() == []
        await f.registries[0].aforce_open("t1", "p", actor="ops")  # the way that is shared
        await until(lambda: f.breaker(1).state is BreakerState.FORCED_OPEN)
