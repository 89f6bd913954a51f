"""The breaker against a small reference model, under random interleavings (hypothesis stateful).

Operations: admit, succeed, fail (counted, rate-limited, or neutral kinds), cancel,
move the clock, reset, force open. After every step the breaker's state and
its number of events must match the model's; at most `half_open_max_calls`
probes are ever out; a no-op never emits.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilience import BreakerPolicy, BreakerRegistry, CircuitOpenError, ErrorKind
from resilience.breaker import Permit
from resilience.events import MemorySink
from tests.fakes import FakeClock

POLICY = BreakerPolicy(
    failure_threshold=3,
    failure_rate=0.5,
    window_s=10.0,
    cooldown_s=5.0,
    max_cooldown_s=20.0,
    half_open_max_calls=2,
    probe_timeout_s=7.0,
    provider_wide_min_tenants=0,
)
WIDTH = POLICY.window_s / 10


@dataclass
class ModelPermit:
    generation: int
    probe: int | None  # probe id, None for an ordinary call


@dataclass
class Model:
    """The state machine of docs/architecture.md, "Breaker rules", written plainly."""

    now: float
    state: str = "closed"
    generation: int = 0
    calls: list[tuple[float, bool]] = field(default_factory=list)
    ladder: float = POLICY.cooldown_s
    retry_at: float = 0.0
    probes: dict[int, float] = field(default_factory=dict)
    next_probe: int = 0
    events: int = 0

    def visible_state(self) -> str:
        if self.state in ("open", "forced_open") and self.now >= self.retry_at:
            return "half_open"
        return self.state

    def wait(self) -> float:
        """Seconds until a call could be admitted, as the breaker reports it."""
        if self.state == "closed":
            return 0.0
        if self.state == "half_open":
            if len(self.probes) < POLICY.half_open_max_calls:
                return 0.0
            watchdog = min(self.probes.values()) + POLICY.probe_timeout_s - self.now
            return max(0.0, min(watchdog, self.ladder))
        return max(0.0, self.retry_at - self.now)

    def move(self, to: str) -> None:
        if to == self.state:
            return
        self.state = to
        self.generation += 1
        self.events += 1
        if to != "half_open":
            self.probes.clear()

    def window(self) -> tuple[int, int]:
        current = math.floor(self.now / WIDTH)
        inside = [failed for t, failed in self.calls if math.floor(t / WIDTH) > current - 10]
        return len(inside), sum(inside)

    def admit(self) -> ModelPermit | None:
        if self.state == "closed":
            return ModelPermit(self.generation, None)
        if self.state != "half_open":
            if self.now < self.retry_at:
                return None
            self.move("half_open")
        if len(self.probes) >= POLICY.half_open_max_calls:
            self.probes = {
                p: t for p, t in self.probes.items() if self.now - t < POLICY.probe_timeout_s
            }
            if len(self.probes) >= POLICY.half_open_max_calls:
                return None
        self.next_probe += 1
        self.probes[self.next_probe] = self.now
        return ModelPermit(self.generation, self.next_probe)

    def open(self, cooldown: float) -> None:
        self.retry_at = self.now + cooldown
        self.move("open")

    def settle(
        self, permit: ModelPermit, kind: ErrorKind | None, retry_after: float | None
    ) -> None:
        if kind is not None and not kind.policy.counts_on_breaker:
            self.release(permit)
            return
        if permit.generation != self.generation:
            return  # late
        if permit.probe is None:
            self.calls.append((self.now, kind is not None))
            if kind is ErrorKind.RATE_LIMITED:
                self.open(
                    min(retry_after, POLICY.max_cooldown_s)
                    if retry_after is not None
                    else self.ladder
                )
                return
            if kind is not None:
                calls, fails = self.window()
                if fails >= POLICY.failure_threshold and fails >= POLICY.failure_rate * calls:
                    self.open(self.ladder)
            return
        if permit.probe not in self.probes:
            return  # reclaimed by the watchdog
        del self.probes[permit.probe]
        if kind is None:
            self.calls.clear()
            self.ladder = POLICY.cooldown_s
            self.move("closed")
        elif kind is ErrorKind.RATE_LIMITED:
            self.open(
                min(retry_after, POLICY.max_cooldown_s) if retry_after is not None else self.ladder
            )
        else:
            self.ladder = min(self.ladder * 2, POLICY.max_cooldown_s)
            self.open(self.ladder)

    def release(self, permit: ModelPermit) -> None:
        if permit.probe is not None:
            self.probes.pop(permit.probe, None)

    def reset(self) -> None:
        self.calls.clear()
        self.ladder = POLICY.cooldown_s
        self.move("closed")

    def force_open(self, duration: float | None) -> None:
        self.retry_at = math.inf if duration is None else self.now + duration
        if self.state == "forced_open":
            return
        self.move("forced_open")


KINDS = st.sampled_from(
    [
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.RATE_LIMITED,
        ErrorKind.BAD_REQUEST,
        ErrorKind.AUTH,
    ]
)


class BreakerAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.sink = MemorySink()
        self.registry = BreakerRegistry(
            policy=POLICY, sinks=[self.sink], clock=self.clock, wall_clock=self.clock.wall
        )
        self.breaker = self.registry.get("t", "p")
        self.model = Model(now=self.clock.now)
        self.out: list[tuple[Permit, ModelPermit]] = []

    @rule()
    def admit(self) -> None:
        expected = self.model.admit()
        try:
            permit = self.breaker.acquire()
        except CircuitOpenError:
            assert expected is None
            return
        assert expected is not None
        assert permit.probe == (expected.probe is not None)
        self.out.append((permit, expected))

    @precondition(lambda self: bool(self.out))
    @rule(
        data=st.data(),
        kind=st.one_of(st.none(), KINDS),
        retry_after=st.sampled_from([None, 1.0, 30.0]),
    )
    def finish(
        self, data: st.DataObject, kind: ErrorKind | None, retry_after: float | None
    ) -> None:
        index = data.draw(st.integers(0, len(self.out) - 1))
        permit, expected = self.out.pop(index)
        self.model.settle(expected, kind, retry_after)
        if kind is None:
            self.breaker.record_success(permit)
        else:
            self.breaker.record_failure(permit, kind, retry_after_s=retry_after)

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        permit, expected = self.out.pop(data.draw(st.integers(0, len(self.out) - 1)))
        self.model.release(expected)
        self.breaker.release(permit)

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 2.5, 5.0, 7.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.now = self.clock.now

    @rule()
    def reset(self) -> None:
        self.model.reset()
        self.breaker.reset()

    @rule(duration=st.sampled_from([None, 3.0]))
    def force_open(self, duration: float | None) -> None:
        self.model.force_open(duration)
        self.breaker.force_open(duration_s=duration)

    @invariant()
    def same_state_and_same_events(self) -> None:
        assert str(self.breaker.state) == self.model.visible_state()
        assert len(self.sink.events) == self.model.events
        assert self.breaker.retry_after() == self.model.wait()

    @invariant()
    def never_more_probes_than_allowed(self) -> None:
        assert len(self.breaker._probes) <= POLICY.half_open_max_calls

    @invariant()
    def every_event_is_a_real_change(self) -> None:
        assert all(e.from_state != e.to_state for e in self.sink.events)


TestBreakerAgainstModel = BreakerAgainstModel.TestCase
TestBreakerAgainstModel.settings = settings(
    max_examples=1500, stateful_step_count=60, deadline=None
)
