"""The breaker against a small reference model, under random interleavings (hypothesis stateful).

Operations: admit, succeed, fail (counted, rate-limited, or neutral kinds), cancel,
move the clock, reset, force open. After every step the breaker's state and
its number of events must match the model's; at most `half_open_max_calls`
probes are ever out; a no-op never emits.

Then three tenants of one provider and their provider-wide gate against `ProviderModel`:
the same operations plus bursts of calls, and every move, wait and the gate's streak must
match.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from resilience import BreakerRegistry, CircuitOpenError, ErrorKind
from resilience.breaker.events import MemorySink
from resilience.breaker.machine import CircuitBreaker, Permit
from tests.support.breaker_model import (
    KINDS,
    POLICY,
    Model,
    ModelPermit,
    ProviderModel,
    ProviderPermit,
    streak_of,
)
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


# -- several tenants and the provider-wide gate --------------------------------------------------

WIDE = replace(POLICY, provider_wide_min_tenants=2, provider_wide_streak=4)
TENANTS = ("t0", "t1", "t2")
PROVIDER_KINDS = st.sampled_from(
    [ErrorKind.SERVER_ERROR, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR, ErrorKind.AUTH, None]
)
"""Mostly provider-scoped failures, so streaks grow, breakers trip and the gate opens."""


class ProviderAgainstModel(RuleBasedStateMachine):
    """Three tenants of one provider with both gate rules on (trips, streak), against
    `ProviderModel`: calls left out and answered later are the stragglers."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.sink = MemorySink()
        self.registry = BreakerRegistry(
            policy=WIDE, sinks=[self.sink], clock=self.clock, wall_clock=self.clock.wall
        )
        self.model = ProviderModel(self.clock.now, WIDE)
        self.out: list[tuple[str, Permit, ProviderPermit]] = []

    def breaker(self, tenant: str) -> CircuitBreaker:
        if tenant == "*":
            return self.registry.store.gate("p")
        return self.registry.get(tenant, "p")

    def do_admit(self, tenant: str) -> bool:
        expected, refusal = self.model.admit(tenant)
        try:
            permit = self.breaker(tenant).acquire()
        except CircuitOpenError as refused:
            assert refusal is not None, (tenant, refused)
            seen = (str(refused.state), refused.retry_after_s, refused.provider_wide)
            assert seen == refusal, (tenant, seen, refusal)
            return False
        assert expected is not None, (tenant, refusal)
        assert permit.probe == (expected.own.probe is not None)
        assert (permit.gate is not None) == (expected.gate is not None)
        self.out.append((tenant, permit, expected))
        return True

    def do_finish(self, index: int, kind: ErrorKind | None, retry_after: float | None) -> None:
        tenant, permit, expected = self.out.pop(index)
        self.model.settle(expected, kind, retry_after)
        breaker = self.breaker(tenant)
        if kind is None:
            breaker.record_success(permit)
        else:
            breaker.record_failure(permit, kind, retry_after_s=retry_after)

    @rule(tenant=st.sampled_from(TENANTS))
    def admit(self, tenant: str) -> None:
        self.do_admit(tenant)

    @rule(tenant=st.sampled_from(TENANTS), kinds=st.lists(PROVIDER_KINDS, min_size=1, max_size=5))
    def calls(self, tenant: str, kinds: list[ErrorKind | None]) -> None:
        for kind in kinds:
            if self.do_admit(tenant):
                self.do_finish(len(self.out) - 1, kind, None)

    @precondition(lambda self: bool(self.out))
    @rule(
        data=st.data(),
        kind=st.one_of(st.none(), KINDS, st.just(ErrorKind.SERVER_ERROR)),
        retry_after=st.sampled_from([None, 1.0, 30.0]),
    )
    def finish(
        self, data: st.DataObject, kind: ErrorKind | None, retry_after: float | None
    ) -> None:
        self.do_finish(data.draw(st.integers(0, len(self.out) - 1)), kind, retry_after)

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        tenant, permit, expected = self.out.pop(data.draw(st.integers(0, len(self.out) - 1)))
        self.model.release(expected)
        self.breaker(tenant).release(permit)

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 2.5, 5.0, 7.0, 11.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.model.set_now(self.clock.now)

    @rule(tenant=st.sampled_from((*TENANTS, "*")), duration=st.sampled_from(["reset", None, 3.0]))
    def admin(self, tenant: str, duration: str | float | None) -> None:
        if duration == "reset":
            self.model.reset(tenant)
            self.breaker(tenant).reset()
        else:
            assert not isinstance(duration, str)
            self.model.force_open(tenant, duration)
            self.breaker(tenant).force_open(duration_s=duration)

    @invariant()
    def same_states_waits_moves_and_streak(self) -> None:
        for tenant in (*TENANTS, "*"):
            breaker, model = self.breaker(tenant), self.model.breaker(tenant)
            assert str(breaker.state) == model.visible_state(), tenant
            assert breaker.retry_after() == self.model.wait(tenant), tenant
        moves = [(e.tenant_id, str(e.to_state)) for e in self.sink.events]
        assert moves == self.model.log
        assert streak_of(self.breaker("*")) == self.model.streak_counts()


TestProviderAgainstModel = ProviderAgainstModel.TestCase
TestProviderAgainstModel.settings = settings(
    max_examples=800, stateful_step_count=60, deadline=None
)
