"""The (tenant, provider) breaker state machine, driven by a fake clock."""

from __future__ import annotations

import asyncio
import math

import pytest

from resilience import (
    BreakerPolicy,
    BreakerRegistry,
    CircuitOpenError,
    ErrorKind,
    TransitionReason,
)
from resilience.breaker.events import MemorySink
from tests.support.breakers import (
    CLOSED,
    FORCED,
    HALF_OPEN,
    OPEN,
    fail,
    make,
    open_breaker,
    succeed,
)
from tests.support.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


# -- opening --------------------------------------------------------------------------------


def test_five_failures_among_a_hundred_successes_do_not_trip(clock: FakeClock) -> None:
    reg = make(clock)
    succeed(reg, n=100)
    fail(reg, n=5)
    assert reg.get("acme", "openai").state is CLOSED


def test_five_failures_of_eight_calls_trip(clock: FakeClock, sink: MemorySink) -> None:
    reg = make(clock, sink)
    succeed(reg, n=3)
    fail(reg, n=4)
    assert reg.get("acme", "openai").state is CLOSED
    fail(reg, n=1)
    assert reg.get("acme", "openai").state is OPEN
    [event] = sink.events
    assert (event.from_state, event.to_state, event.reason) == (CLOSED, OPEN, "threshold")
    assert event.failures == 5
    assert event.error_kind is ErrorKind.SERVER_ERROR
    assert event.cooldown_s == 30.0
    assert event.detail["calls"] == 8


def test_fewer_failures_than_the_threshold_never_trip_even_at_full_rate(clock: FakeClock) -> None:
    reg = make(clock)
    fail(reg, n=4)
    assert reg.get("acme", "openai").state is CLOSED


def test_window_expiry_forgets_old_failures(clock: FakeClock) -> None:
    reg = make(clock)
    fail(reg, n=4)
    clock.advance(60.0)
    fail(reg, n=1)
    breaker = reg.get("acme", "openai")
    assert breaker.state is CLOSED
    assert breaker.failures_in_window() == 1


def test_failures_inside_the_window_still_count(clock: FakeClock) -> None:
    reg = make(clock)
    fail(reg, n=4)
    clock.advance(50.0)  # within 0.9 * window_s of the first failures
    fail(reg, n=1)
    assert reg.get("acme", "openai").state is OPEN


def test_kinds_that_do_not_count_never_trip(clock: FakeClock, sink: MemorySink) -> None:
    reg = make(clock, sink)
    for kind in (ErrorKind.BAD_REQUEST, ErrorKind.CONTEXT_LENGTH, ErrorKind.CANCELLED):
        fail(reg, n=20, kind=kind)
    assert reg.get("acme", "openai").state is CLOSED
    assert reg.get("acme", "openai").failures_in_window() == 0
    assert sink.events == []


def test_rate_limit_opens_at_once_until_retry_after(clock: FakeClock, sink: MemorySink) -> None:
    reg = make(clock, sink)
    breaker = reg.get("acme", "openai")
    breaker.record_failure(breaker.acquire(), ErrorKind.RATE_LIMITED, retry_after_s=5.0)
    assert breaker.state is OPEN
    assert breaker.retry_after() == pytest.approx(5.0)
    [event] = sink.events
    assert event.reason == TransitionReason.RETRY_AFTER
    assert event.cooldown_s == 5.0
    clock.advance(5.0)
    assert breaker.state is HALF_OPEN


def test_rate_limit_without_retry_after_uses_the_cooldown(clock: FakeClock) -> None:
    reg = make(clock)
    breaker = reg.get("acme", "openai")
    breaker.record_failure(breaker.acquire(), ErrorKind.RATE_LIMITED)
    assert breaker.retry_after() == pytest.approx(30.0)


# -- cooldown and probes ------------------------------------------------------------------------


def test_cooldown_doubles_after_each_failed_probe_up_to_the_cap_and_resets_on_close(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink, cooldown_s=30, max_cooldown_s=100)
    breaker = reg.get("acme", "openai")
    open_breaker(reg)
    waits = [breaker.retry_after()]
    for _ in range(3):
        clock.advance(breaker.retry_after())
        probe = breaker.acquire()
        breaker.record_failure(probe, ErrorKind.OVERLOADED)
        waits.append(breaker.retry_after())
    assert waits == [30.0, 60.0, 100.0, 100.0]
    clock.advance(100.0)
    breaker.record_success(breaker.acquire())
    assert breaker.state is CLOSED
    open_breaker(reg)
    assert breaker.retry_after() == 30.0
    reasons = [e.reason for e in sink.events]
    assert reasons == [
        "threshold",
        "cooldown_elapsed",
        "probe_failed",
        "cooldown_elapsed",
        "probe_failed",
        "cooldown_elapsed",
        "probe_failed",
        "cooldown_elapsed",
        "probe_succeeded",
        "threshold",
    ]
    assert [e.cooldown_s for e in sink.events if e.reason == "probe_failed"] == [60, 100, 100]


def test_open_breaker_refuses_with_the_time_left(clock: FakeClock) -> None:
    reg = make(clock)
    open_breaker(reg)
    clock.advance(12.0)
    with pytest.raises(CircuitOpenError) as info:
        reg.get("acme", "openai").acquire()
    assert info.value.retry_after_s == pytest.approx(18.0)
    assert info.value.state is OPEN
    assert (info.value.tenant, info.value.provider) == ("acme", "openai")


async def test_half_open_admits_exactly_n_of_100_concurrent_callers(clock: FakeClock) -> None:
    reg = make(clock, half_open_max_calls=3)
    open_breaker(reg)
    clock.advance(30.0)
    breaker = reg.get("acme", "openai")
    release = asyncio.Event()
    reached_upstream = 0
    refusals: list[CircuitOpenError] = []

    async def caller() -> None:
        nonlocal reached_upstream
        await asyncio.sleep(0)
        try:
            permit = breaker.acquire()
        except CircuitOpenError as exc:
            refusals.append(exc)
            return
        reached_upstream += 1
        await release.wait()
        breaker.record_success(permit)

    tasks = [asyncio.create_task(caller()) for _ in range(100)]
    for _ in range(5):
        await asyncio.sleep(0)
    assert reached_upstream == 3
    assert len(refusals) == 97
    assert all(r.state is HALF_OPEN and r.retry_after_s > 0 for r in refusals)
    release.set()
    await asyncio.gather(*tasks)
    assert breaker.state is CLOSED


def test_probe_success_closes_and_forgets_the_window(clock: FakeClock) -> None:
    reg = make(clock)
    open_breaker(reg)
    clock.advance(30.0)
    breaker = reg.get("acme", "openai")
    breaker.record_success(breaker.acquire())
    assert breaker.state is CLOSED
    assert breaker.failures_in_window() == 0
    fail(reg, n=1)
    assert breaker.state is CLOSED


def test_cancelled_probe_releases_its_permit_and_records_nothing(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink)
    open_breaker(reg)
    clock.advance(30.0)
    breaker = reg.get("acme", "openai")
    probe = breaker.acquire()
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    breaker.record_failure(probe, ErrorKind.CANCELLED)
    events_before = len(sink.events)
    second = breaker.acquire()  # the permit is free again
    assert breaker.state is HALF_OPEN
    breaker.release(second)
    assert breaker.acquire() is not None
    assert len(sink.events) == events_before


def test_a_probe_that_never_reports_back_loses_its_permit_after_probe_timeout(
    clock: FakeClock,
) -> None:
    reg = make(clock, probe_timeout_s=10)
    open_breaker(reg)
    clock.advance(30.0)
    breaker = reg.get("acme", "openai")
    lost = breaker.acquire()
    clock.advance(9.9)
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert info.value.retry_after_s == pytest.approx(0.1)
    clock.advance(0.1)
    fresh = breaker.acquire()
    breaker.record_failure(lost, ErrorKind.TIMEOUT)  # the lost probe reports at last: ignored
    assert breaker.state is HALF_OPEN
    assert breaker.late_results == 1
    breaker.record_success(fresh)
    assert breaker.state is CLOSED


def test_late_failure_while_open_neither_extends_cooldown_nor_emits(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink)
    breaker = reg.get("acme", "openai")
    in_flight = [breaker.acquire() for _ in range(10)]
    open_breaker(reg)
    clock.advance(10.0)
    for permit in in_flight:
        breaker.record_failure(permit, ErrorKind.TIMEOUT)
    assert breaker.retry_after() == pytest.approx(20.0)
    assert len(sink.events) == 1
    assert breaker.late_results == 10


def test_late_success_after_reopen_does_not_close(clock: FakeClock) -> None:
    reg = make(clock)
    breaker = reg.get("acme", "openai")
    early = breaker.acquire()
    open_breaker(reg)
    breaker.record_success(early)
    assert breaker.state is OPEN


# -- admin ----------------------------------------------------------------------------------


async def test_forced_open_stays_open_past_cooldown_until_reset(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink)
    await reg.aforce_open("acme", "openai", actor="ops", note="key rotation")
    clock.advance(10_000.0)
    breaker = reg.get("acme", "openai")
    assert breaker.state is FORCED
    with pytest.raises(CircuitOpenError) as info:
        breaker.acquire()
    assert math.isinf(info.value.retry_after_s)
    snap = await reg.areset("acme", "openai", actor="ops", note="done")
    assert snap.state is CLOSED
    breaker.record_success(breaker.acquire())
    opened, closed = sink.events
    assert (opened.to_state, opened.reason, opened.actor) == (FORCED, "admin_open", "ops")
    assert opened.detail == {"note": "key rotation"}
    assert (closed.to_state, closed.reason, closed.actor) == (CLOSED, "admin_reset", "ops")


async def test_forced_open_with_duration_probes_when_it_ends(clock: FakeClock) -> None:
    reg = make(clock)
    snap = await reg.aforce_open("acme", "openai", duration_s=120.0)
    assert snap.retry_at is not None
    breaker = reg.get("acme", "openai")
    clock.advance(119.0)
    with pytest.raises(CircuitOpenError):
        breaker.acquire()
    clock.advance(1.0)
    breaker.record_success(breaker.acquire())
    assert breaker.state is CLOSED


async def test_force_open_rejects_a_bad_duration(clock: FakeClock) -> None:
    reg = make(clock)
    with pytest.raises(ValueError, match="duration_s"):
        await reg.aforce_open("acme", "openai", duration_s=-1.0)


async def test_transition_to_the_current_state_emits_nothing(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink)
    await reg.areset("acme", "openai")
    await reg.aforce_open("acme", "openai")
    await reg.aforce_open("acme", "openai")
    await reg.areset("acme", "openai")
    await reg.areset("acme", "openai")
    assert [(e.from_state, e.to_state) for e in sink.events] == [(CLOSED, FORCED), (FORCED, CLOSED)]


async def test_exactly_one_event_under_1000_concurrent_failures(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink)
    breaker = reg.get("acme", "openai")
    gate = asyncio.Event()
    refused = 0

    async def failing_call() -> None:
        nonlocal refused
        try:
            permit = breaker.acquire()
        except CircuitOpenError:
            refused += 1
            return
        await gate.wait()
        breaker.record_failure(permit, ErrorKind.SERVER_ERROR)

    tasks = [asyncio.create_task(failing_call()) for _ in range(1000)]
    await asyncio.sleep(0)
    gate.set()
    await asyncio.gather(*tasks)
    assert len(sink.events) == 1
    assert sink.events[0].to_state is OPEN
    assert breaker.late_results == 1000 - reg.policy.failure_threshold


# -- isolation and provider-wide ---------------------------------------------------------------


def test_tenant_a_failures_never_change_tenant_b(clock: FakeClock) -> None:
    reg = make(clock)
    fail(reg, tenant="a", n=5)
    fail(reg, tenant="a", provider="anthropic", n=5, kind=ErrorKind.AUTH)
    breaker_b = reg.get("b", "openai")
    assert reg.get("a", "openai").state is OPEN
    assert breaker_b.state is CLOSED
    assert breaker_b.failures_in_window() == 0
    succeed(reg, tenant="b")


def test_provider_wide_opens_after_n_distinct_tenants(clock: FakeClock, sink: MemorySink) -> None:
    reg = make(clock, sink, provider_wide_min_tenants=3, provider_wide_streak=0)  # trips alone
    open_breaker(reg, tenant="t1")
    open_breaker(reg, tenant="t2")
    succeed(reg, tenant="t9")
    open_breaker(reg, tenant="t3")
    with pytest.raises(CircuitOpenError) as info:
        reg.get("t9", "openai").acquire()
    assert info.value.provider_wide
    assert reg.get("t9", "openai").state is CLOSED
    gate_events = [e for e in sink.events if e.tenant_id == "*"]
    assert [(e.to_state, e.reason) for e in gate_events] == [(OPEN, "provider_wide")]
    assert gate_events[0].detail["tenants"] == ["t1", "t2", "t3"]
    succeed(reg, tenant="t9", provider="anthropic")  # other providers unaffected


def test_provider_wide_probe_closes_the_gate_for_everyone(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink, provider_wide_min_tenants=2)
    open_breaker(reg, tenant="t1")
    open_breaker(reg, tenant="t2")
    clock.advance(30.0)
    breaker = reg.get("t9", "openai")
    probe = breaker.acquire()
    with pytest.raises(CircuitOpenError):
        reg.get("t8", "openai").acquire()  # the gate's single probe is out
    breaker.record_success(probe)
    succeed(reg, tenant="t8")
    gate_reasons = [e.reason for e in sink.events if e.tenant_id == "*"]
    assert gate_reasons == ["provider_wide", "cooldown_elapsed", "probe_succeeded"]


def test_failed_provider_wide_probe_reopens_with_doubled_cooldown(clock: FakeClock) -> None:
    reg = make(clock, provider_wide_min_tenants=2)
    open_breaker(reg, tenant="t1")
    open_breaker(reg, tenant="t2")
    clock.advance(30.0)
    breaker = reg.get("t9", "openai")
    breaker.record_failure(breaker.acquire(), ErrorKind.NETWORK)
    gate = reg.store.gate("openai")
    assert gate.state is OPEN
    assert gate.retry_after() == pytest.approx(60.0)


def test_tenant_scoped_failures_never_open_provider_wide(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink, provider_wide_min_tenants=2)
    for tenant in ("t1", "t2", "t3", "t4"):
        fail(reg, tenant=tenant, n=5, kind=ErrorKind.AUTH)
        breaker = reg.get(tenant, "openai")
        breaker_after = breaker.state
        assert breaker_after is OPEN
    for tenant in ("t5", "t6", "t7"):
        breaker = reg.get(tenant, "openai")
        breaker.record_failure(breaker.acquire(), ErrorKind.RATE_LIMITED, retry_after_s=1.0)
    succeed(reg, tenant="t9")
    assert all(e.tenant_id != "*" for e in sink.events)


def test_provider_wide_counts_only_tenants_within_the_window(clock: FakeClock) -> None:
    reg = make(clock, provider_wide_min_tenants=3, provider_wide_streak=0)
    open_breaker(reg, tenant="t1")
    open_breaker(reg, tenant="t2")
    clock.advance(61.0)
    open_breaker(reg, tenant="t3")
    succeed(reg, tenant="t9")


def test_a_streak_of_provider_failures_over_enough_tenants_opens_the_gate_at_once(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink, failure_threshold=50, provider_wide_streak=10)
    for i in range(9):  # nine failures over three tenants: not yet
        fail(reg, tenant=f"t{i % 3}")
    succeed(reg, tenant="t9", n=10)  # more successes than failures: the streak ends
    fail(reg, tenant="t1")  # counting starts again
    for i in range(8):
        fail(reg, tenant=f"t{i % 3}")
    succeed(reg, tenant="t8", n=10)
    assert all(e.tenant_id != "*" for e in sink.events)
    for i in range(10):
        fail(reg, tenant=f"t{i % 3}")
    with pytest.raises(CircuitOpenError) as info:
        reg.get("t9", "openai").acquire()
    assert info.value.provider_wide
    gate_events = [e for e in sink.events if e.tenant_id == "*"]
    assert [(e.to_state, e.reason) for e in gate_events] == [(OPEN, "provider_wide")]
    assert gate_events[0].detail["tenants"] == ["t0", "t1", "t2"]
    assert all(reg.get(f"t{i}", "openai").state is CLOSED for i in range(3))


def test_a_streak_from_too_few_tenants_or_of_tenant_errors_does_not_open_the_gate(
    clock: FakeClock, sink: MemorySink
) -> None:
    reg = make(clock, sink, failure_threshold=50, provider_wide_streak=10)
    for i in range(30):
        fail(reg, tenant=f"t{i % 2}")  # two tenants only: could be their own requests
    for i in range(30):
        fail(reg, tenant=f"u{i % 5}", kind=ErrorKind.AUTH)  # keys, not the provider
    assert all(e.tenant_id != "*" for e in sink.events)
    off = make(clock, sink, failure_threshold=50, provider_wide_streak=0)
    for i in range(30):
        fail(off, tenant=f"t{i % 5}")
    assert all(e.tenant_id != "*" for e in sink.events)


def test_provider_wide_zero_disables(clock: FakeClock) -> None:
    reg = make(clock, provider_wide_min_tenants=0)
    for tenant in ("t1", "t2", "t3", "t4", "t5"):
        open_breaker(reg, tenant=tenant)
    succeed(reg, tenant="t9")


async def test_admin_can_isolate_a_provider_for_every_tenant(clock: FakeClock) -> None:
    reg = make(clock)
    await reg.aforce_open("*", "openai", actor="ops")
    with pytest.raises(CircuitOpenError) as info:
        reg.get("anyone", "openai").acquire()
    assert info.value.provider_wide
    await reg.areset("*", "openai", actor="ops")
    succeed(reg, tenant="anyone")


# -- snapshots, sinks, eviction ---------------------------------------------------------------


def test_snapshot_reports_state_failures_and_wall_times(clock: FakeClock) -> None:
    reg = make(clock)
    open_breaker(reg)
    snap = reg.snapshot("acme", "openai")
    assert snap is not None
    assert snap.state is OPEN
    assert snap.failures == 5
    assert snap.opened_at is not None and snap.retry_at is not None
    assert (snap.retry_at - snap.opened_at).total_seconds() == pytest.approx(30.0)
    assert snap.opened_at.timestamp() == pytest.approx(clock.wall())
    assert snap.as_dict()["state"] == "open"
    assert reg.snapshot("nobody", "openai") is None


def test_circuits_filters_by_tenant_provider_and_state(clock: FakeClock) -> None:
    reg = make(clock)
    open_breaker(reg, tenant="a")
    succeed(reg, tenant="b")
    succeed(reg, tenant="a", provider="anthropic")
    assert [(c.tenant, c.provider) for c in reg.circuits(tenant="a")] == [
        ("a", "anthropic"),
        ("a", "openai"),
    ]
    assert [c.tenant for c in reg.circuits(state=OPEN)] == ["a"]
    assert {c.tenant for c in reg.circuits(provider="openai")} == {"*", "a", "b"}


def test_a_failing_sink_never_breaks_the_caller(clock: FakeClock, sink: MemorySink) -> None:
    class Broken:
        def emit(self, event: object) -> None:
            raise RuntimeError("disk full")

    reg = BreakerRegistry(sinks=[Broken(), sink], clock=clock, wall_clock=clock.wall)
    open_breaker(reg)
    assert len(sink.events) == 1


def test_transitions_carry_the_request_id(clock: FakeClock, sink: MemorySink) -> None:
    reg = BreakerRegistry(
        sinks=[sink], clock=clock, wall_clock=clock.wall, request_id=lambda: "req-42"
    )
    open_breaker(reg)
    assert sink.events[0].request_id == "req-42"


def test_evicted_idle_breakers_come_back_closed(clock: FakeClock) -> None:
    reg = BreakerRegistry(clock=clock, wall_clock=clock.wall, idle_ttl_s=300)
    fail(reg, tenant="idle", n=3)
    open_breaker(reg, tenant="stuck")
    first = reg.get("idle", "openai")
    clock.advance(301.0)
    succeed(reg, tenant="other")  # a miss rotates the generations
    clock.advance(301.0)
    succeed(reg, tenant="another")
    assert reg.store.peek("idle", "openai") is None
    again = reg.get("idle", "openai")
    assert again is not first
    assert again.state is CLOSED and again.failures_in_window() == 0
    assert reg.get("stuck", "openai").state is HALF_OPEN  # not closed: never evicted


def test_memory_stays_bounded_with_100000_tenants_touched_once(clock: FakeClock) -> None:
    reg = BreakerRegistry(clock=clock, wall_clock=clock.wall, idle_ttl_s=300)
    peak = 0
    for i in range(100_000):
        if i % 1000 == 0:
            clock.advance(30.0)  # 100,000 tenants over 50 minutes
            peak = max(peak, len(reg))
        succeed(reg, tenant=f"tenant-{i}")
    # tenants of the last two TTLs (20,000 at this rate) at most, plus the one being added
    assert peak <= 20_001
    assert len(reg) <= 20_001


def test_a_breaker_in_use_survives_rotation(clock: FakeClock) -> None:
    reg = BreakerRegistry(clock=clock, wall_clock=clock.wall, idle_ttl_s=300)
    first = reg.get("busy", "openai")
    for i in range(10):
        fail(reg, tenant="busy", n=1)
        clock.advance(200.0)
        succeed(reg, tenant=f"new-{i}")  # misses rotate the generations
    assert reg.get("busy", "openai") is first
    assert len(reg) <= 4


def test_an_empty_store_passed_in_is_used_not_replaced(clock: FakeClock, sink: MemorySink) -> None:
    from resilience.breaker.store import MemoryStore

    events: list[object] = []
    store = MemoryStore(policy_for=lambda p: BreakerPolicy(), emit=events.append, clock=clock)
    assert len(store) == 0  # falsy, which once made the registry build its own
    reg = BreakerRegistry(store=store, clock=clock, wall_clock=clock.wall)
    assert reg.store is store


async def test_an_admin_isolation_does_not_lengthen_the_cooldown_after_it(clock: FakeClock) -> None:
    """Found by the model test: the isolation's duration once replaced the cooldown ladder."""
    reg = make(clock)
    await reg.aforce_open("acme", "openai", duration_s=600.0)
    clock.advance(600.0)
    breaker = reg.get("acme", "openai")
    breaker.record_failure(breaker.acquire(), ErrorKind.OVERLOADED)
    assert breaker.retry_after() == pytest.approx(60.0)  # 30 s doubled, not 600 doubled
