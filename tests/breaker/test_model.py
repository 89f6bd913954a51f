"""The breaker against a small reference model, under random interleavings (hypothesis stateful).

Operations: admit, succeed, fail (counted, rate-limited, or neutral kinds), cancel,
move the clock, reset, force open. After every step the breaker's state and
its number of events must match the model's; at most `half_open_max_calls`
probes are ever out; a no-op never emits.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilience import BreakerRegistry, CircuitOpenError, ErrorKind
from resilience.breaker.events import MemorySink
from resilience.breaker.machine import Permit
from tests.support.breaker_model import KINDS, POLICY, Model, ModelPermit
from tests.support.clock import FakeClock


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
