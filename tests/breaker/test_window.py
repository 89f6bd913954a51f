"""The breaker's packed window decides exactly as the ring of cumulative marks it replaced.

The reference below is the earlier window, kept verbatim in spirit: cumulative counts
plus a mark at the start of each of ten buckets. Random sequences of successes, counted
failures and clock moves (inside a bucket, onto bucket edges, past the whole window) drive
a breaker and the reference in step; after every step they must agree on the calls and
failures in the window, and at every failure on whether the rate gate opens. Breakers that
see only successes for a long time and then fail are the case the packing is for: the
successes still in the window must weigh in the failure rate, those out of it must not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st

from resilience import BreakerPolicy, ErrorKind
from resilience.breaker.events import BreakerState, BreakerTransition
from resilience.breaker.machine import CircuitBreaker
from resilience.breaker.window import BUCKETS, FIELD_BITS, SlidingCount, rolled, total
from tests.support.clock import FakeClock


@dataclass
class RingWindow:
    """The earlier scheme: cumulative totals, and the totals at the start of each bucket."""

    width: float
    bucket: int
    calls: int = 0
    fails: int = 0
    ring_calls: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    ring_fails: list[int] = field(default_factory=lambda: [0] * BUCKETS)

    @classmethod
    def at(cls, window_s: float, now: float) -> RingWindow:
        width = window_s / BUCKETS
        return cls(width=width, bucket=math.floor(now / width))

    def roll(self, now: float) -> None:
        bucket = math.floor(now / self.width)
        steps = bucket - self.bucket
        if steps <= 0:
            return
        for b in range(self.bucket + 1, self.bucket + 1 + min(steps, BUCKETS)):
            self.ring_calls[b % BUCKETS] = self.calls
            self.ring_fails[b % BUCKETS] = self.fails
        self.bucket = bucket

    def add(self, now: float, *, failed: bool) -> None:
        self.roll(now)
        self.calls += 1
        self.fails += failed

    def in_window(self, now: float) -> tuple[int, int]:
        self.roll(now)
        oldest = (self.bucket + 1) % BUCKETS
        return self.calls - self.ring_calls[oldest], self.fails - self.ring_fails[oldest]

    def clear(self, now: float) -> None:
        self.roll(now)
        self.ring_calls = [self.calls] * BUCKETS
        self.ring_fails = [self.fails] * BUCKETS


class Recorder:
    def __init__(self) -> None:
        self.events: list[BreakerTransition] = []

    def transitioned(self, breaker: CircuitBreaker, event: BreakerTransition) -> None:
        self.events.append(event)

    def tripped(self, breaker: CircuitBreaker, kind: ErrorKind, now: float) -> None:
        pass


WINDOWS = (10.0, 60.0, 0.3, 7.0)

steps = st.one_of(
    st.tuples(st.just("ok"), st.integers(1, 40)),
    st.tuples(st.just("fail"), st.integers(1, 3)),
    st.tuples(st.just("wait"), st.floats(0.0, 0.35)),  # fractions of the window
    st.tuples(st.just("wait_buckets"), st.integers(1, 12)),  # onto bucket edges
    st.tuples(st.just("wait"), st.floats(0.9, 3.0)),  # past the whole window
)


@settings(max_examples=400, deadline=None)
@given(
    threshold=st.integers(1, 8),
    rate=st.sampled_from((0.05, 0.1, 0.25, 0.5, 0.75, 1.0)),
    window_s=st.sampled_from(WINDOWS),
    start=st.floats(0.0, 5e6),
    script=st.lists(steps, min_size=1, max_size=60),
)
def test_the_rate_gate_decides_as_the_ring_did(
    threshold: int,
    rate: float,
    window_s: float,
    start: float,
    script: list[tuple[str, float]],
) -> None:
    policy = BreakerPolicy(
        failure_threshold=threshold,
        failure_rate=rate,
        window_s=window_s,
        provider_wide_min_tenants=0,
    )
    clock = FakeClock(start=start)
    seen = Recorder()
    breaker = CircuitBreaker(
        "t", "p", policy=policy, clock=clock, wall_clock=clock.wall, observer=seen
    )
    ring = RingWindow.at(window_s, clock())
    width = window_s / BUCKETS
    for op, amount in script:
        if op == "wait":
            clock.advance(amount * window_s)
        elif op == "wait_buckets":
            clock.now = (math.floor(clock.now / width) + amount) * width
        elif op == "ok":
            for _ in range(int(amount)):
                breaker.record_success(breaker.acquire())
                ring.add(clock(), failed=False)
        else:
            for _ in range(int(amount)):
                before = len(seen.events)
                breaker.record_failure(breaker.acquire(), ErrorKind.SERVER_ERROR)
                ring.add(clock(), failed=True)
                calls, fails = ring.in_window(clock())
                opens = fails >= threshold and fails >= rate * calls
                assert (breaker.state is BreakerState.OPEN) is opens, (calls, fails)
                if opens:
                    (event,) = seen.events[before:]
                    assert event.failures == fails
                    assert event.detail["calls"] == calls
                    breaker.reset()  # back to closed with an empty window, as the ring
                    ring.clear(clock())
        assert (breaker.calls_in_window(), breaker.failures_in_window()) == ring.in_window(clock())


def test_successes_alone_then_failures_count_the_successes_still_in_the_window() -> None:
    """Thirty successes spread over ten seconds, then failures: only the successes of the
    last ten buckets dilute the failure rate, exactly as before."""
    policy = BreakerPolicy(
        failure_threshold=2, failure_rate=0.5, window_s=10.0, provider_wide_min_tenants=0
    )
    clock = FakeClock(start=1_000.0)
    breaker = CircuitBreaker(
        "t", "p", policy=policy, clock=clock, wall_clock=clock.wall, observer=Recorder()
    )
    for _ in range(10):  # three a second for ten seconds: a bucket is one second
        for _ in range(3):
            breaker.record_success(breaker.acquire())
        clock.advance(1.0)
    clock.advance(2.0)  # twelve seconds on: the first three buckets (nine calls) are out
    assert breaker.calls_in_window() == 21
    for _ in range(20):
        breaker.record_failure(breaker.acquire(), ErrorKind.SERVER_ERROR)
        assert breaker.state is BreakerState.CLOSED  # 20 of 41: under half
    breaker.record_failure(breaker.acquire(), ErrorKind.SERVER_ERROR)
    assert breaker.state is BreakerState.OPEN  # 21 of 42: half


@given(
    past=st.lists(st.integers(0, 2**FIELD_BITS - 1), min_size=BUCKETS - 1, max_size=BUCKETS - 1),
    current=st.integers(0, 2**FIELD_BITS - 1),
    steps=st.integers(-2, 25),
)
def test_rolled_moves_the_counts_back_and_drops_those_past_the_window(
    past: list[int], current: int, steps: int
) -> None:
    """Field i of the packed int is the bucket i + 1 before the current one."""
    packed = sum(c << (FIELD_BITS * i) for i, c in enumerate(past))
    assert total(packed) == sum(past)
    moved = rolled(packed, current, steps)
    if steps <= 0:
        assert moved == packed
        return
    by_age = {steps - 1: current} | {i + steps: c for i, c in enumerate(past)}
    kept = {age: c for age, c in by_age.items() if age < BUCKETS - 1}
    assert moved == sum(c << (FIELD_BITS * age) for age, c in kept.items())
    assert total(moved) == sum(kept.values())


@settings(max_examples=200, deadline=None)
@given(
    window_s=st.sampled_from(WINDOWS),
    script=st.lists(st.one_of(st.integers(1, 5), st.floats(0.0, 1.5)), min_size=1, max_size=60),
)
def test_sliding_count_counts_as_the_ring_did(window_s: float, script: list[int | float]) -> None:
    clock = FakeClock(start=12_345.0)
    count = SlidingCount(window_s, clock)
    ring = RingWindow.at(window_s, clock())
    for item in script:
        if isinstance(item, int):
            for _ in range(item):
                count.add()
                ring.add(clock(), failed=False)
        else:
            clock.advance(item * window_s)
        assert count.count() == ring.in_window(clock())[0]
