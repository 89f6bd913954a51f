"""Bulkheads through the real SDKs on the chaos upstream: a slow noisy tenant, fair shares,
the first wave against a dead provider, healthy load, and the skip to the fallback.

Slow answers are held by a `Latch` the chaos upstream sleeps on: they end when a test opens
it, never on a timer. Time moves only through the harness's fake clock; `GUARD_S` is a hang
guard (waits for a slot, SDK read timeouts), never something a test waits out.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine, Iterable
from typing import Any, TypeVar

import pytest

from resilience.breaker.events import BreakerState
from resilience.chaos import ChaosUpstream, Fault
from resilience.client.outcomes import OutcomeStatus
from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.errors import AllTargetsFailed
from resilience.routing.bulkhead import BulkheadPolicy, ProviderGate, Refusal
from tests.support.client import CHAT, Harness

T = TypeVar("T")

GUARD_S = 30.0
"""Never reached in a passing run: a hang fails the test instead of stalling the suite."""
NOISY, QUIET = "acme", "globex"
NOISY_KEY = "acme-upstream-key"
"""The noisy tenant's own upstream key: the chaos upstream slows its calls only."""
ALONE = 18
"""Calls one tenant alone may have in flight under a limit of 20: the rest (10%) is the
reserve for tenants holding nothing."""
PRIMARY = "primary:gpt-4.1"
"""A route of one target: a call the bulkhead skips has nowhere else to go."""


class Latch:
    """A chaos `sleep` that holds every slow answer until `open()`; counts what it holds."""

    def __init__(self) -> None:
        self._open = asyncio.Event()
        self._changed = asyncio.Condition()
        self.held = 0
        self.peak = 0

    async def sleep(self, seconds: float) -> None:
        self.held += 1
        self.peak = max(self.peak, self.held)
        async with self._changed:
            self._changed.notify_all()
        try:
            await self._open.wait()
        finally:
            self.held -= 1

    async def until_held(self, n: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self.held >= n)

    def open(self) -> None:
        self._open.set()

    def close(self) -> None:
        """Hold the slow answers that come next."""
        self._open.clear()


def latched(harness: Harness) -> Latch:
    """Give `harness` a chaos upstream whose `latency_s` faults wait on a latch (before the
    client is built: the client is wired to the upstream it finds)."""
    latch = Latch()
    harness.chaos = ChaosUpstream(sleep=latch.sleep)
    return latch


def fixed(limit: int, *, max_wait_s: float = GUARD_S) -> BulkheadPolicy:
    """A limit that cannot move, for caps, reserve and fairness apart from the AIMD."""
    return BulkheadPolicy(
        initial_limit=limit, min_limit=limit, max_limit=limit, max_wait_s=max_wait_s
    )


def tasks_of(calls: Iterable[Coroutine[Any, Any, T]]) -> list[asyncio.Task[T]]:
    return [asyncio.create_task(call) for call in calls]


async def until_done(tasks: list[asyncio.Task[T]], n: int) -> list[asyncio.Task[T]]:
    """Wait until `n` of `tasks` have ended (no timer: each wake-up is a task ending)."""
    while True:
        done = [t for t in tasks if t.done()]
        if len(done) >= n:
            return done
        await asyncio.wait([t for t in tasks if not t.done()], return_when=asyncio.FIRST_COMPLETED)


def skip_reason(task: asyncio.Task[object]) -> str:
    """`tenant_limit` / `provider_limit` for a call the bulkhead skipped (and nothing else)."""
    return skip_reason_of(task.exception())


def skip_reason_of(error: BaseException | None) -> str:
    assert isinstance(error, AllTargetsFailed), error
    (outcome,) = error.outcomes
    assert outcome.status is OutcomeStatus.BULKHEAD_FULL, outcome
    assert outcome.attempts == 0
    return outcome.message


def assert_no_breaker_heard(harness: Harness, client: ResilientClient) -> None:
    """A skip is never a failure: breakers closed with no failure, no audit event."""
    for tenant in (NOISY, QUIET):
        breaker = client.registry.get(tenant, "primary")
        assert breaker.state is BreakerState.CLOSED
        assert breaker.failures_in_window() == 0
    assert harness.sink.events == []


def gate_of(client: ResilientClient, provider: str = "primary") -> ProviderGate:
    assert client.bulkheads is not None
    return client.bulkheads.gate(provider)


# -- a slow noisy tenant ------------------------------------------------------------------------


async def noisy_client(
    harness: Harness, policy: BulkheadPolicy, cap: int | None
) -> tuple[Latch, ResilientClient]:
    """A client over a real socket (so its connection pool is shared as in production: 100
    connections, which 400 held calls would fill without bulkheads), whose noisy tenant's
    calls are held by the returned latch; `cap`: its own `max_concurrent` at `primary`."""
    latch = latched(harness)
    harness.chaos.add_fault(Fault(latency_s=4.0), api_key=NOISY_KEY)
    noisy = TenantPolicy(
        api_keys={"primary": NOISY_KEY},
        max_concurrent={"primary": cap} if cap is not None else {},
    )
    client = await harness.client(
        served=True, bulkhead=policy, tenants={NOISY: noisy}, timeout_s=GUARD_S
    )
    return latch, client


@pytest.mark.parametrize(
    ("policy", "cap", "held", "reason"),
    [
        # the provider's gate is full (the noisy tenant may not take the reserve): no wait
        (fixed(20, max_wait_s=0), None, ALONE, Refusal.PROVIDER_LIMIT),
        # the tenant's own cap: refused at once, whatever the wait allowed
        (fixed(20), 5, 5, Refusal.TENANT_LIMIT),
    ],
    ids=["provider_full_no_wait", "tenant_cap"],
)
async def test_a_quiet_tenant_is_answered_while_a_noisy_one_holds_400_slow_calls(
    harness: Harness, policy: BulkheadPolicy, cap: int | None, held: int, reason: Refusal
) -> None:
    latch, client = await noisy_client(harness, policy, cap)
    gate = gate_of(client)
    async with asyncio.timeout(GUARD_S):
        noisy = tasks_of(client.complete(CHAT, route=PRIMARY, tenant=NOISY) for _ in range(400))
        await latch.until_held(held)
        skipped = await until_done(noisy, 400 - held)

        quiet = await client.complete(CHAT, route=PRIMARY, tenant=QUIET)

        assert quiet.target.provider == "primary"
        assert [o.status for o in quiet.outcomes] == [OutcomeStatus.SUCCEEDED]
        assert (latch.held, gate.in_flight_of(NOISY)) == (held, held)  # still holding
        assert Counter(skip_reason(t) for t in skipped) == {str(reason): 400 - held}
        assert harness.chaos.hit_count(api_key=NOISY_KEY) == held  # no call for a skip
        latch.open()
        answered = await asyncio.gather(*(t for t in noisy if t not in skipped))
    assert len(answered) == held and latch.peak == held
    assert gate.refused[reason] == 400 - held
    assert_no_breaker_heard(harness, client)


async def test_a_noisy_tenants_excess_calls_wait_for_a_slot_when_the_wait_allows(
    harness: Harness,
) -> None:
    latch, client = await noisy_client(harness, fixed(20), None)
    gate = gate_of(client)
    async with asyncio.timeout(GUARD_S):
        noisy = tasks_of(client.complete(CHAT, route=PRIMARY, tenant=NOISY) for _ in range(60))
        await latch.until_held(ALONE)
        assert (gate.in_flight, gate.waiting) == (ALONE, 60 - ALONE)

        quiet = await client.complete(CHAT, route=PRIMARY, tenant=QUIET)  # from the reserve

        assert [o.status for o in quiet.outcomes] == [OutcomeStatus.SUCCEEDED]
        assert (gate.in_flight, gate.waiting) == (ALONE, 60 - ALONE)
        latch.open()
        answered = await asyncio.gather(*noisy)
    assert all(r.outcomes[0].status is OutcomeStatus.SUCCEEDED for r in answered)
    assert harness.chaos.hit_count(api_key=NOISY_KEY) == 60
    assert latch.peak == ALONE  # never more in flight than the gate allowed
    assert gate.refused == dict.fromkeys(Refusal, 0)
    assert_no_breaker_heard(harness, client)


# -- fairness ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "offered", [(5, 5, 5), (5, 10, 15)], ids=["five_times_each", "unequal_offers"]
)
async def test_three_tenants_offering_five_times_the_limit_or_more_each_get_a_third(
    harness: Harness, offered: tuple[int, int, int]
) -> None:
    """Round robin between waiting tenants: equal shares however long each one's queue (first
    come first served would give the unequal offers 1/6, 1/3 and 1/2)."""
    limit, answers = 6, 600
    client = await harness.client(bulkhead=fixed(limit), timeout_s=GUARD_S)
    tenants = ("t1", "t2", "t3")
    counted: Counter[str] = Counter()

    async def worker(tenant: str) -> None:
        while counted.total() < answers:
            await client.complete(CHAT, route=PRIMARY, tenant=tenant)
            if counted.total() < answers:  # answers after the run's end do not count
                counted[tenant] += 1

    workers = [
        worker(t) for t, times in zip(tenants, offered, strict=True) for _ in range(times * limit)
    ]
    async with asyncio.timeout(GUARD_S):
        await asyncio.gather(*workers)
    shares = {t: counted[t] / answers for t in tenants}
    assert max(abs(share - 1 / 3) / (1 / 3) for share in shares.values()) <= 0.10, shares
    assert gate_of(client).refused == dict.fromkeys(Refusal, 0)


# -- the first wave against a dead provider ------------------------------------------------------


async def test_the_first_wave_against_a_dead_provider_is_bounded_and_the_limit_grows_back(
    harness: Harness,
) -> None:
    latch = latched(harness)
    client = await harness.client(bulkhead=BulkheadPolicy(max_wait_s=GUARD_S), timeout_s=GUARD_S)
    gate = gate_of(client)
    initial = gate.policy.initial_limit
    assert initial == 20
    harness.chaos.add_fault(Fault(status=503, latency_s=1.0), upstream="primary")
    async with asyncio.timeout(GUARD_S):
        wave = tasks_of(client.complete(CHAT, route="chat", tenant=NOISY) for _ in range(200))
        await latch.until_held(ALONE)
        # every call not admitted waits in the gate: none reached the dead provider
        assert harness.chaos.hit_count(upstream="primary") == gate.in_flight == ALONE
        assert gate.waiting == 200 - ALONE
        latch.open()
        answered = await asyncio.gather(*wave)
    assert harness.chaos.hit_count(upstream="primary") <= initial + 5
    assert {r.target.provider for r in answered} == {"fallback"}
    assert gate.limit < initial  # halved on the failures
    assert client.registry.get(NOISY, "primary").state is BreakerState.OPEN

    harness.chaos.clear_faults()
    harness.clock.advance(client.registry.policy.max_cooldown_s)
    limits = [gate.limit]
    async with asyncio.timeout(GUARD_S):
        for _ in range(6):
            rounds = await asyncio.gather(
                *(client.complete(CHAT, route="chat", tenant=NOISY) for _ in range(100))
            )
            limits.append(gate.limit)
    assert {r.target.provider for r in rounds} == {"primary"}  # the breaker closed again
    assert limits == sorted(limits) and limits[-1] > initial, limits
    assert limits[-1] > limits[-2], limits  # still growing while the load wants more


# -- healthy load ---------------------------------------------------------------------------------


async def test_a_healthy_provider_at_500_concurrent_calls_is_not_throttled(
    harness: Harness,
) -> None:
    policy = BulkheadPolicy(max_wait_s=GUARD_S)
    client = await harness.client(bulkhead=policy, timeout_s=GUARD_S)
    async with asyncio.timeout(GUARD_S):
        results = await asyncio.gather(
            *(client.complete(CHAT, route=PRIMARY, tenant=NOISY) for _ in range(500))
        )
    assert {r.outcomes[0].status for r in results} == {OutcomeStatus.SUCCEEDED}
    gate = gate_of(client)
    assert gate.refused == dict.fromkeys(Refusal, 0)
    assert gate.limit == policy.max_limit  # grown from 20 to the pool's size, not held down
    assert harness.chaos.hit_count(upstream="primary") == 500


# -- with a fallback ------------------------------------------------------------------------------


@pytest.mark.parametrize("reason", [Refusal.TENANT_LIMIT, Refusal.PROVIDER_LIMIT])
async def test_a_bulkhead_skip_moves_to_the_fallback_at_once(
    harness: Harness, reason: Refusal
) -> None:
    latch = latched(harness)
    harness.chaos.add_fault(Fault(latency_s=4.0), upstream="primary", times=1)
    if reason is Refusal.TENANT_LIMIT:
        policy, holder = fixed(20), NOISY
    else:  # another tenant holds the only slot; no wait allowed
        policy, holder = fixed(1, max_wait_s=0), QUIET
    tenants = {NOISY: TenantPolicy(max_concurrent={"primary": 1})}
    client = await harness.client(bulkhead=policy, tenants=tenants, timeout_s=GUARD_S)
    async with asyncio.timeout(GUARD_S):
        holding = asyncio.create_task(client.complete(CHAT, route="chat", tenant=holder))
        await latch.until_held(1)

        result = await client.complete(CHAT, route="chat", tenant=NOISY)

        latch.open()
        await holding
    assert result.target.provider == "fallback"
    first, then = result.outcomes
    assert (first.status, first.message, first.attempts) == (
        OutcomeStatus.BULKHEAD_FULL,
        str(reason),
        0,
    )
    assert then.status is OutcomeStatus.SUCCEEDED
    assert harness.clock.sleeps == []  # no backoff, no wait: on to the fallback at once
    assert harness.chaos.hit_count(upstream="primary") == 1  # the holder's call only
    assert_no_breaker_heard(harness, client)


async def test_a_stream_holds_its_slot_until_it_ends(harness: Harness) -> None:
    tenants = {NOISY: TenantPolicy(max_concurrent={"primary": 1})}
    client = await harness.client(bulkhead=fixed(20), tenants=tenants, timeout_s=GUARD_S)
    gate = gate_of(client)
    async with asyncio.timeout(GUARD_S):
        async with await client.stream(CHAT, route=PRIMARY, tenant=NOISY) as stream:
            first = await anext(stream)
            assert first.text_delta and gate.in_flight_of(NOISY) == 1
            with pytest.raises(AllTargetsFailed) as refused:
                await client.complete(CHAT, route=PRIMARY, tenant=NOISY)
            assert refused.value.outcomes[0].message == str(Refusal.TENANT_LIMIT)
            rest = [chunk async for chunk in stream]
        assert rest[-1].finish_reason == "stop"
        assert gate.in_flight_of(NOISY) == 0
        again = await client.complete(CHAT, route=PRIMARY, tenant=NOISY)
    assert again.target.provider == "primary"


async def test_the_last_resort_probe_after_a_retry_after_takes_a_slot_too(
    harness: Harness,
) -> None:
    """Once every target failed, the probe after the shortest Retry-After is a call like any
    other: it is counted in the gate, and a stream it opens holds its slot to the end."""
    client = await harness.client(bulkhead=fixed(20))
    gate = gate_of(client)
    limited = Fault(status=429, retry_after="1")
    harness.chaos.sequence([limited, None], upstream="primary")
    async with asyncio.timeout(GUARD_S):
        async with await client.stream(CHAT, route=PRIMARY, tenant=NOISY) as stream:
            assert gate.in_flight_of(NOISY) == 1
            chunks = [chunk async for chunk in stream]
        assert chunks[-1].finish_reason == "stop" and gate.in_flight == 0
        harness.chaos.sequence([limited, None], upstream="primary")
        answered = await client.complete(CHAT, route=PRIMARY, tenant=NOISY)
    assert answered.attempts == 2 and gate.in_flight == 0
    admitted = gate.snapshot()["admitted_total"]
    assert harness.chaos.hit_count(upstream="primary") == admitted == 4


async def test_a_full_provider_says_when_a_slot_typically_frees(harness: Harness) -> None:
    """Every target full: the error's Retry-After is the gate's typical hold, not nothing."""
    latch = latched(harness)
    harness.chaos.add_fault(Fault(latency_s=4.0), upstream="primary", times=2)
    client = await harness.client(bulkhead=fixed(1, max_wait_s=0), timeout_s=GUARD_S)
    async with asyncio.timeout(GUARD_S):
        first = asyncio.create_task(client.complete(CHAT, route=PRIMARY, tenant=QUIET))
        await latch.until_held(1)
        harness.clock.advance(3.0)  # the only slot is held 3 s
        latch.open()
        await first
        latch.close()
        holding = asyncio.create_task(client.complete(CHAT, route=PRIMARY, tenant=QUIET))
        await latch.until_held(1)
        typical = gate_of(client).hold_s

        with pytest.raises(AllTargetsFailed) as skipped:
            await client.complete(CHAT, route=PRIMARY, tenant=NOISY)

        latch.open()
        await holding
    assert skip_reason_of(skipped.value) == str(Refusal.PROVIDER_LIMIT)
    assert typical == 3.0
    assert skipped.value.retry_after_s == typical
