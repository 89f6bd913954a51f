"""The provider-wide streak (docs/architecture.md, "Breaker rules"): provider-scoped failures
over many tenants open the gate at once, and answers to calls sent before the outage
(stragglers) do not reset the count; only successes that outnumber the failures end it.

The last two tests run a fleet of calls in virtual time (seeded, so every run is the same):
a healthy provider answering 1% of calls with a 500 never opens the gate, a dead one opens
it within a few calls of its death although the calls in flight keep succeeding for a while.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from resilience import BreakerRegistry, CircuitOpenError, ErrorKind
from resilience.breaker.events import MemorySink, TransitionReason
from resilience.breaker.machine import CircuitBreaker, Permit
from tests.support.breaker_model import streak_of
from tests.support.breakers import CLOSED, OPEN, fail, make, succeed
from tests.support.clock import FakeClock

STREAK = {"failure_threshold": 50, "provider_wide_streak": 10, "provider_wide_min_tenants": 3}
"""Tenants' breakers that never trip (50 failures): only the streak can open the gate."""


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


def gate_opens(sink: MemorySink) -> list[TransitionReason]:
    return [e.reason for e in sink.events if e.tenant_id == "*" and e.to_state is OPEN]


def in_flight(reg: BreakerRegistry, n: int) -> list[tuple[str, Permit]]:
    """Calls admitted now and answered later: the stragglers of an outage that starts now."""
    return [(f"s{i}", reg.get(f"s{i}", "openai").acquire()) for i in range(n)]


def answer(reg: BreakerRegistry, call: tuple[str, Permit]) -> None:
    tenant, permit = call
    reg.get(tenant, "openai").record_success(permit)


def test_stragglers_answering_among_the_failures_do_not_reset_the_streak(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink, **STREAK)
    stragglers = in_flight(reg, 9)
    clock.advance(0.05)
    for i in range(9):  # each failure is followed by one straggler's success
        fail(reg, tenant=f"t{i % 3}")
        answer(reg, stragglers[i])
    assert gate_opens(sink) == []
    fail(reg, tenant="t0")  # the tenth failure: half of the provider's answers were failures
    assert gate_opens(sink) == [TransitionReason.PROVIDER_WIDE]
    with pytest.raises(CircuitOpenError) as refused:
        reg.get("anyone", "openai").acquire()
    assert refused.value.provider_wide


def test_successes_that_outnumber_the_failures_end_the_streak(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink, **STREAK)
    for i in range(6):
        fail(reg, tenant=f"t{i % 3}")
    succeed(reg, tenant="u", n=6)  # as many successes as failures: the streak holds
    assert streak_of(reg.store.gate("openai")) == (6, 6)
    succeed(reg, tenant="u")  # one more: the provider answers most calls, it ends
    assert streak_of(reg.store.gate("openai")) == (0, 0)
    for i in range(9):  # a new streak: nine failures are not enough
        fail(reg, tenant=f"t{i % 3}")
    assert gate_opens(sink) == []
    fail(reg, tenant="t1")
    assert gate_opens(sink) == [TransitionReason.PROVIDER_WIDE]


def test_a_failure_rate_of_one_ends_the_streak_at_any_success(
    clock: FakeClock, sink: MemorySink
) -> None:
    """`failure_rate` = 1.0: only failures strictly in a row make a streak."""
    reg = make(clock, sink, failure_rate=1.0, **STREAK)
    for i in range(9):
        fail(reg, tenant=f"t{i % 3}")
    succeed(reg, tenant="u")
    for i in range(9):
        fail(reg, tenant=f"t{i % 3}")
    assert gate_opens(sink) == []


def test_the_streak_starts_over_when_the_gate_moves(clock: FakeClock, sink: MemorySink) -> None:
    """Calls admitted before the gate opened fail while it is open; once its probe closes it,
    their count must not open it again at the next failure."""
    reg = make(clock, sink, **STREAK)
    late = [(f"t{i % 3}", reg.get(f"t{i % 3}", "openai").acquire()) for i in range(12)]
    for i in range(10):
        fail(reg, tenant=f"t{i % 3}")
    assert gate_opens(sink) == [TransitionReason.PROVIDER_WIDE]
    for tenant, permit in late:  # answered while the gate is open: they count, but cannot open it
        reg.get(tenant, "openai").record_failure(permit, ErrorKind.SERVER_ERROR)
    clock.advance(30.0)
    breaker = reg.get("u", "openai")
    breaker.record_success(breaker.acquire())  # the gate's probe: it closes
    assert reg.store.gate("openai").state is CLOSED
    fail(reg, tenant="t0")
    assert reg.store.gate("openai").state is CLOSED
    assert gate_opens(sink) == [TransitionReason.PROVIDER_WIDE]


def test_a_late_success_does_not_count_against_the_streak(
    clock: FakeClock, sink: MemorySink
) -> None:
    """A success counts where its breaker counts it: one admitted before its breaker opened is
    a late result, on the breaker and for the streak alike."""
    reg = make(clock, sink, provider_wide_streak=10, provider_wide_min_tenants=3)
    early = reg.get("t0", "openai").acquire()
    fail(reg, tenant="t0", n=5)  # t0's breaker opens: `early` is now late
    fail(reg, tenant="t1", n=4)
    reg.get("t0", "openai").record_success(early)
    assert reg.get("t0", "openai").late_results == 1
    assert streak_of(reg.store.gate("openai")) == (9, 0)
    fail(reg, tenant="t2")
    assert gate_opens(sink) == [TransitionReason.PROVIDER_WIDE]


# -- a fleet in virtual time -----------------------------------------------------------------


@dataclass(frozen=True)
class Fleet:
    """Calls from many tenants: Poisson arrivals, each admitted, then answered after its
    latency (a success after `latency_s`, a failure, quicker, after `fail_latency_s`)."""

    tenants: int = 200
    rate: float = 200.0
    """Calls per second over all tenants."""
    seconds: float = 300.0
    latency_s: float = 0.3
    fail_latency_s: float = 0.05
    seed: int = 7


@dataclass
class Run:
    registry: BreakerRegistry
    sink: MemorySink
    sent: int = 0
    failed: int = 0


def run_fleet(fleet: Fleet, fails: Callable[[float, random.Random], bool]) -> Run:
    """Drive the calls through a registry with the default policy; `fails(sent_at, rng)` says
    whether a call sent then fails (a 500). Calls the breakers refuse are not sent."""
    clock = FakeClock(start=0.0)
    sink = MemorySink()
    run = Run(BreakerRegistry(sinks=[sink], clock=clock, wall_clock=clock.wall), sink)
    rng = random.Random(fleet.seed)
    order = itertools.count()
    events: list[tuple[float, int, Callable[[], None]]] = []

    def at(when: float, action: Callable[[], None]) -> None:
        heapq.heappush(events, (when, next(order), action))

    def send(breaker: CircuitBreaker, permit: Permit) -> None:
        run.sent += 1
        if fails(clock.now, rng):
            run.failed += 1
            at(
                clock.now + fleet.fail_latency_s,
                lambda: breaker.record_failure(permit, ErrorKind.SERVER_ERROR),
            )
        else:
            at(clock.now + fleet.latency_s, lambda: breaker.record_success(permit))

    def arrive() -> None:
        breaker = run.registry.get(f"t{rng.randrange(fleet.tenants)}", "openai")
        with contextlib.suppress(CircuitOpenError):  # refused: not sent
            send(breaker, breaker.acquire())
        following = clock.now + rng.expovariate(fleet.rate)
        if following < fleet.seconds:
            at(following, arrive)

    at(0.0, arrive)
    while events:
        clock.now, _, action = heapq.heappop(events)
        action()
    return run


@pytest.mark.parametrize("latency_s", [0.3, 3.0])
def test_a_healthy_provider_answering_one_call_in_a_hundred_with_a_500_never_opens_the_gate(
    latency_s: float,
) -> None:
    """60,000 calls, 1% of them failing: many short streaks, never a provider-wide open (and,
    at 3 s per answer, 600 calls in flight, so every failure is followed by stragglers)."""
    run = run_fleet(Fleet(latency_s=latency_s), lambda _, rng: rng.random() < 0.01)
    assert run.sent == pytest.approx(60_000, rel=0.02)  # none refused
    assert run.failed == pytest.approx(600, rel=0.15)
    assert [e for e in run.sink.events if e.tenant_id == "*"] == []


def test_a_dead_provider_opens_the_gate_while_its_calls_in_flight_still_succeed() -> None:
    """The provider dies at t=60 s: calls sent before still succeed for 0.3 s after, among the
    first failures (the stragglers that used to reset the streak). The gate opens at the
    tenth failure, long before the last straggler comes back."""
    death = 60.0
    fleet = Fleet(seconds=61.0)
    run = run_fleet(fleet, lambda sent_at, _: sent_at >= death)
    opened = [e for e in run.sink.events if e.tenant_id == "*" and e.to_state is OPEN]
    assert [e.reason for e in opened] == [TransitionReason.PROVIDER_WIDE]
    opened_at = opened[0].occurred_at.timestamp() - FakeClock(start=0.0).wall()
    first_failure = death + fleet.fail_latency_s
    assert first_failure < opened_at < death + fleet.latency_s  # stragglers were still coming
    assert run.failed < 30  # then every call is refused without being sent
