"""What a live breaker holds: most never fail, so a quiet one must cost little.

A breaker whose calls all fall in one bucket keeps its window in two small ints, and every
breaker that has not moved shares the closed permit of generation 0. Sharing is safe only
while nobody writes to that permit: a call that also probes the provider-wide gate must get
a permit of its own.
"""

from __future__ import annotations

import gc
import tracemalloc

from resilience import BreakerPolicy, BreakerRegistry, ErrorKind
from resilience.breaker.events import BreakerState
from resilience.breaker.machine import CircuitBreaker
from tests.support.clock import FakeClock


def test_a_breaker_that_only_succeeds_in_one_bucket_holds_small_ints() -> None:
    clock = FakeClock()
    breaker = BreakerRegistry(clock=clock, wall_clock=clock.wall).get("t", "openai")
    for _ in range(3):
        breaker.record_success(breaker.acquire())
    window = (breaker._calls, breaker._fails, breaker._past_calls, breaker._past_fails)
    assert window == (3, 0, 0, 0)  # no window object, no allocation


def test_a_thousand_quiet_breakers_take_under_400_bytes_each() -> None:
    """The per-breaker cost `bench/breaker.py` reports, held here so a new field is noticed:
    store entry, key, breaker, window and permit after three successes each."""
    clock = FakeClock()
    names = [f"tenant-{i:06d}" for i in range(1_000)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        registry = BreakerRegistry(clock=clock, wall_clock=clock.wall)
        for name in names * 3:
            breaker = registry.get(name, "openai")
            breaker.record_success(breaker.acquire())
        gc.collect()
        per_breaker = (tracemalloc.get_traced_memory()[0] - before) / len(names)
    finally:
        tracemalloc.stop()
    assert per_breaker < 400, per_breaker


def test_fresh_breakers_share_the_first_permit_and_get_their_own_on_moving() -> None:
    clock = FakeClock()
    registry = BreakerRegistry(
        clock=clock, wall_clock=clock.wall, policy=BreakerPolicy(failure_threshold=1)
    )
    a, b = registry.get("a", "openai"), registry.get("b", "openai")
    shared = a.acquire()
    assert b.acquire() is shared and shared.generation == 0
    a.record_failure(a.acquire(), ErrorKind.AUTH)
    assert a.state is BreakerState.OPEN
    assert b.acquire() is shared  # b did not move
    clock.advance(a.policy.cooldown_s)
    probe = a.acquire()
    a.record_success(probe)
    assert a.snapshot().state is BreakerState.CLOSED
    own = a.acquire()
    assert own is not shared and own.generation > 0
    b.record_success(shared)  # b's calls still count on b alone
    assert (a.calls_in_window(), b.calls_in_window()) == (0, 1)


def test_a_call_that_probes_the_gate_gets_its_own_permit_and_the_shared_one_stays_clean() -> None:
    clock = FakeClock()
    registry = BreakerRegistry(clock=clock, wall_clock=clock.wall)
    breaker = registry.get("t", "openai")
    shared = breaker.acquire()
    gate: CircuitBreaker = registry.store.gate("openai")
    gate.open_provider_wide(clock(), ["x", "y", "z"])
    clock.advance(gate.policy.cooldown_s)
    permit = breaker.acquire()  # closed for the tenant, the gate's probe for the provider
    assert permit is not shared and permit.gate is not None
    assert shared.gate is None and not shared.probe
    breaker.record_success(permit)
    assert gate.state is BreakerState.CLOSED
    assert breaker.acquire() is shared and shared.gate is None
