"""The Redis store's state machine (the Lua scripts, on the real Redis) against the memory
store and the model, under the same random interleavings (hypothesis stateful).

Every step runs on three sides: the reference model of `tests/support/breaker_model.py`
(`Model` for one tenant, `ProviderModel` for several tenants and their provider-wide gate),
breakers of a `MemoryStore` and breakers of a `RedisStore`, both through the registry and
the breakers' public calls. One fake clock
drives all three: the Redis scripts take it as their time (`RedisStore(script_clock=...)`)
instead of the server's `TIME`. After every step the Redis side's verdicts are flushed and
its subscription drained (`flush()`, `heard()`), then the sides must agree on every
breaker's state and wait, on every refusal's wait, and on the audit events emitted
(tenant, from, to, reason, kind, cooldown).

Two machines: one tenant held to `Model` as well, and three tenants of one provider with
the provider-wide rules on (trips, the streak, the gate's probes) held to `ProviderModel`,
down to the streak's counts in both stores (calls admitted and answered steps later are the
stragglers the streak must outlive), plus the shared request-rate buckets, where the memory
store is the reference. Regression tests for the disagreements found are at the end.

The Redis side is one store (one process); several processes on one Redis are the subject
of `test_store.py` and `test_processes.py`. Without a Redis the tests skip, except under
CI=true, where they fail (the `redis_url` fixture).
"""

from __future__ import annotations

import asyncio
import math
import uuid
from dataclasses import replace
from typing import Any

import pytest
import redis
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from resilience.breaker.events import MemorySink
from resilience.breaker.machine import ASK_STORE, CircuitBreaker, Permit
from resilience.breaker.registry import BreakerRegistry
from resilience.breaker.store.redis.store import RedisStore
from resilience.errors import CircuitOpenError, ErrorKind
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
from tests.support.servers import until

pytestmark = pytest.mark.redis

PROVIDER = "p"
WIDE = replace(POLICY, provider_wide_min_tenants=2, provider_wide_streak=4)
TTL = 1e6  # no breaker goes idle within an example: eviction is not under test here
STEPS = st.sampled_from([0.1, 0.5, 1.0, 2.5, 5.0, 7.0, 11.0])
RETRY_AFTER = st.sampled_from([None, 1.0, 30.0])
ADMIN = st.sampled_from(["reset", None, 3.0])
"""An admin reset, or an open without an end or for 3 s."""
FAILURES = st.sampled_from(
    [ErrorKind.SERVER_ERROR, ErrorKind.TIMEOUT, ErrorKind.SERVER_ERROR, ErrorKind.AUTH, None]
)
"""Mostly provider-scoped failures, so breakers trip and gates open."""

Outcome = tuple[str, Any]
"""("admitted", (probe, gate probe)) or ("refused", (state, wait, provider-wide))."""


def close(a: float, b: float) -> bool:
    """Waits agree: the script's JSON carries 14 significant digits, so not to the last bit."""
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


class Side:
    """One store's registry and audit sink, driven through the public calls."""

    def __init__(self, registry: BreakerRegistry, sink: MemorySink) -> None:
        self.registry = registry
        self.sink = sink

    def breaker(self, tenant: str) -> CircuitBreaker:
        if tenant == "*":
            return self.registry.store.gate(PROVIDER)
        return self.registry.get(tenant, PROVIDER)

    async def admit(self, tenant: str) -> tuple[Permit | None, Outcome]:
        """What `resilience.client.attempt` does before a call."""
        breaker = self.breaker(tenant)
        try:
            permit = breaker.acquire()
            if permit is ASK_STORE:
                permit = await breaker.admit()
        except CircuitOpenError as refused:
            wait = refused.retry_after_s
            return None, ("refused", (str(refused.state), wait, refused.provider_wide))
        gate_probe = permit.gate is not None and permit.gate.probe
        return permit, ("admitted", (permit.probe, gate_probe))

    def events(self) -> list[tuple[Any, ...]]:
        return [
            (
                e.tenant_id,
                str(e.from_state),
                str(e.to_state),
                str(e.reason),
                None if e.error_kind is None else str(e.error_kind),
                e.cooldown_s,
            )
            for e in self.sink.events
        ]


class Differential(RuleBasedStateMachine):
    """Memory store and Redis store side by side; subclasses pick the tenants and policy."""

    url = ""
    policy = POLICY
    tenants: tuple[str, ...] = ("t0",)

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.clock = FakeClock()
        self.prefix = f"test-diff-{uuid.uuid4().hex[:10]}"
        policy = self.policy
        memory_sink, redis_sink = MemorySink(), MemorySink()
        self.memory = Side(
            BreakerRegistry(
                policy=policy,
                sinks=[memory_sink],
                clock=self.clock,
                wall_clock=self.clock.wall,
                idle_ttl_s=TTL,
            ),
            memory_sink,
        )
        store = RedisStore(
            self.url,
            policy_for=lambda _: policy,
            emit=redis_sink.emit,
            clock=self.clock,
            wall_clock=self.clock.wall,
            idle_ttl_s=TTL,
            prefix=self.prefix,
            script_clock=self.clock,
        )
        self.store = store
        self.redis = Side(
            BreakerRegistry(
                policy=policy,
                clock=self.clock,
                wall_clock=self.clock.wall,
                idle_ttl_s=TTL,
                store=store,
            ),
            redis_sink,
        )
        self.run(self.redis.registry.start())
        # a busy machine may miss the first connection's timeout: the store retries on its own
        self.run(until(lambda: store.online, timeout_s=10.0, every_s=0.01))
        self.model: Model | None = None
        """The reference model of one tenant, where it applies (no provider-wide rule)."""
        self.fleet: ProviderModel | None = None
        """The reference model of several tenants and their gate, where it applies."""
        self.out: list[tuple[str, Permit, Permit, ModelPermit | None, ProviderPermit | None]] = []
        self.outcomes: list[tuple[str, Outcome, Outcome]] = []

    def run(self, work: Any) -> Any:
        return self.loop.run_until_complete(work)

    def settle(self) -> None:
        """The Redis side's verdicts answered and its published changes heard."""
        self.run(self.store.flush())
        self.run(self.store.heard())

    def teardown(self) -> None:
        try:
            self.run(self.redis.registry.aclose())
            self.run(self.memory.registry.aclose())
        finally:
            self.loop.close()
            client = redis.Redis.from_url(self.url)
            keys = list(client.scan_iter(f"{self.prefix}:*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()

    # -- steps ---------------------------------------------------------------------------------

    def do_admit(self, tenant: str) -> bool:
        """Admit one call on every side; they must agree on whether, and on the refusal."""
        expected = self.model.admit() if self.model is not None else None
        in_fleet, fleet_refusal = (
            self.fleet.admit(tenant) if self.fleet is not None else (None, None)
        )
        memory_permit, memory_seen = self.run(self.memory.admit(tenant))
        redis_permit, redis_seen = self.run(self.redis.admit(tenant))
        self.settle()
        self.outcomes.append((tenant, memory_seen, redis_seen))
        assert memory_seen[0] == redis_seen[0], (tenant, memory_seen, redis_seen)
        if self.model is not None:
            assert (expected is not None) == (memory_seen[0] == "admitted")
        if self.fleet is not None:
            assert (in_fleet is not None) == (memory_seen[0] == "admitted"), (tenant, memory_seen)
            if fleet_refusal is not None:
                state, wait, wide = fleet_refusal
                assert (state, wide) == memory_seen[1][::2], (tenant, fleet_refusal, memory_seen)
                assert close(wait, memory_seen[1][1]), (tenant, fleet_refusal, memory_seen)
            else:
                assert in_fleet is not None
                gate_probe = in_fleet.gate is not None
                assert memory_seen[1] == (in_fleet.own.probe is not None, gate_probe)
        if memory_seen[0] == "refused":
            (m_state, m_wait, m_wide), (r_state, r_wait, r_wide) = memory_seen[1], redis_seen[1]
            assert (m_state, m_wide) == (r_state, r_wide), (tenant, memory_seen, redis_seen)
            assert close(m_wait, r_wait), (tenant, memory_seen, redis_seen)
            return False
        assert memory_seen == redis_seen, (tenant, memory_seen, redis_seen)
        if expected is not None:
            assert memory_seen[1][0] == (expected.probe is not None)
        assert memory_permit is not None and redis_permit is not None
        self.out.append((tenant, memory_permit, redis_permit, expected, in_fleet))
        return True

    def do_calls(self, tenant: str, kinds: list[ErrorKind | None]) -> None:
        """A burst of calls, each answered at once: what trips breakers and gates."""
        for kind in kinds:
            if self.do_admit(tenant):
                self.do_finish(len(self.out) - 1, kind, None)

    def do_finish(self, index: int, kind: ErrorKind | None, retry_after: float | None) -> None:
        tenant, memory_permit, redis_permit, expected, in_fleet = self.out.pop(index)
        if self.model is not None and expected is not None:
            self.model.settle(expected, kind, retry_after)
        if self.fleet is not None and in_fleet is not None:
            self.fleet.settle(in_fleet, kind, retry_after)

        async def verdicts() -> None:  # on the loop: the Redis side sends them from tasks
            for side, permit in ((self.memory, memory_permit), (self.redis, redis_permit)):
                breaker = side.breaker(tenant)
                if kind is None:
                    breaker.record_success(permit)
                else:
                    breaker.record_failure(permit, kind, retry_after_s=retry_after)

        self.run(verdicts())
        self.settle()

    def do_cancel(self, index: int) -> None:
        tenant, memory_permit, redis_permit, expected, in_fleet = self.out.pop(index)
        if self.model is not None and expected is not None:
            self.model.release(expected)
        if self.fleet is not None and in_fleet is not None:
            self.fleet.release(in_fleet)

        async def releases() -> None:
            self.memory.breaker(tenant).release(memory_permit)
            self.redis.breaker(tenant).release(redis_permit)

        self.run(releases())
        self.settle()

    def do_advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        if self.model is not None:
            self.model.now = self.clock.now
        if self.fleet is not None:
            self.fleet.set_now(self.clock.now)

    def do_reset(self, tenant: str) -> None:
        if self.model is not None:
            self.model.reset()
        if self.fleet is not None:
            self.fleet.reset(tenant)
        for side in (self.memory, self.redis):
            self.run(side.registry.areset(tenant, PROVIDER))
        self.settle()

    def do_force_open(self, tenant: str, duration: float | None) -> None:
        if self.model is not None:
            self.model.force_open(duration)
        if self.fleet is not None:
            self.fleet.force_open(tenant, duration)
        for side in (self.memory, self.redis):
            self.run(side.registry.aforce_open(tenant, PROVIDER, duration_s=duration))
        self.settle()

    # -- what must agree after every step ------------------------------------------------------

    def agree(self) -> None:
        for tenant in (*self.tenants, "*"):
            memory, shared = self.memory.breaker(tenant), self.redis.breaker(tenant)
            assert memory.state is shared.state, (tenant, memory.state, shared.state)
            m_wait, r_wait = memory.retry_after(), shared.retry_after()
            assert close(m_wait, r_wait), (tenant, m_wait, r_wait)
        assert self.memory.events() == self.redis.events()


class OneTenant(Differential):
    """One tenant, no provider-wide rule: the model, the memory store and Redis agree."""

    def __init__(self) -> None:
        super().__init__()
        self.model = self.reference = Model(now=self.clock.now)
        """The model itself (`model`, typed for the steps that need it)."""

    @rule()
    def admit(self) -> None:
        self.do_admit("t0")

    @rule(kinds=st.lists(st.one_of(st.none(), FAILURES), min_size=1, max_size=4))
    def calls(self, kinds: list[ErrorKind | None]) -> None:
        self.do_calls("t0", kinds)

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data(), kind=st.one_of(st.none(), KINDS), retry_after=RETRY_AFTER)
    def finish(
        self, data: st.DataObject, kind: ErrorKind | None, retry_after: float | None
    ) -> None:
        self.do_finish(data.draw(st.integers(0, len(self.out) - 1)), kind, retry_after)

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.do_cancel(data.draw(st.integers(0, len(self.out) - 1)))

    @rule(seconds=STEPS)
    def advance(self, seconds: float) -> None:
        self.do_advance(seconds)

    @rule(duration=ADMIN)
    def admin(self, duration: float | str | None) -> None:
        if duration == "reset":
            self.do_reset("t0")
        else:
            assert not isinstance(duration, str)
            self.do_force_open("t0", duration)

    @invariant()
    def all_three_agree(self) -> None:
        self.agree()
        for side in (self.memory, self.redis):
            breaker = side.breaker("t0")
            assert str(breaker.state) == self.reference.visible_state()
            assert close(breaker.retry_after(), self.reference.wait())
            assert len(side.sink.events) == self.reference.events


TENANTS = ("t0", "t1", "t2")


class ManyTenants(Differential):
    """Three tenants of one provider with the provider-wide rules on, and rate buckets."""

    policy = WIDE
    tenants = TENANTS

    def __init__(self) -> None:
        super().__init__()
        self.fleet = self.reference = ProviderModel(self.clock.now, WIDE)
        """The model itself (`fleet`, typed for the checks that need it)."""

    @rule(tenant=st.sampled_from(TENANTS))
    def admit(self, tenant: str) -> None:
        self.do_admit(tenant)

    @precondition(lambda self: bool(self.out))
    @rule(
        data=st.data(),
        kind=st.one_of(st.none(), KINDS, st.just(ErrorKind.SERVER_ERROR)),
        retry_after=RETRY_AFTER,
    )
    def finish(
        self, data: st.DataObject, kind: ErrorKind | None, retry_after: float | None
    ) -> None:
        self.do_finish(data.draw(st.integers(0, len(self.out) - 1)), kind, retry_after)

    @precondition(lambda self: bool(self.out))
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self.do_cancel(data.draw(st.integers(0, len(self.out) - 1)))

    @rule(seconds=STEPS)
    def advance(self, seconds: float) -> None:
        self.do_advance(seconds)

    @rule(tenant=st.sampled_from(TENANTS), kinds=st.lists(FAILURES, min_size=1, max_size=4))
    def calls(self, tenant: str, kinds: list[ErrorKind | None]) -> None:
        self.do_calls(tenant, kinds)

    @rule(tenant=st.sampled_from((*TENANTS, "*")), duration=ADMIN)
    def admin(self, tenant: str, duration: float | str | None) -> None:
        if duration == "reset":
            self.do_reset(tenant)
        else:
            assert not isinstance(duration, str)
            self.do_force_open(tenant, duration)

    @rule(tenant=st.sampled_from(("t0", "t1", "*")), rpm=st.sampled_from([2.0, 6.0, 60.0]))
    def take_token(self, tenant: str, rpm: float) -> None:
        key = (tenant, PROVIDER)
        memory, shared = self.memory.registry.store, self.redis.registry.store
        taken = self.run(memory.atake_token(key, rpm)), self.run(shared.atake_token(key, rpm))
        assert taken[0] == taken[1], (key, rpm, taken)
        waits = memory.token_wait_s(key), shared.token_wait_s(key)
        assert close(*waits), (key, rpm, waits)

    @invariant()
    def both_stores_agree(self) -> None:
        self.agree()

    @invariant()
    def both_stores_follow_the_model(self) -> None:
        for tenant in (*TENANTS, "*"):
            breaker = self.memory.breaker(tenant)
            assert str(breaker.state) == self.reference.breaker(tenant).visible_state(), tenant
            assert close(breaker.retry_after(), self.reference.wait(tenant)), tenant
        moves = [(e.tenant_id, str(e.to_state)) for e in self.memory.sink.events]
        assert moves == self.reference.log
        assert self.streaks() == [self.reference.streak_counts()] * 2

    def streaks(self) -> list[tuple[int, int]]:
        """The gate's streak in each store: (failures, successes since it began)."""
        memory = streak_of(self.memory.breaker("*"))
        client = redis.Redis.from_url(self.url)
        try:
            raw = client.hmget(f"{self.prefix}:b:{PROVIDER}:*", ["sk", "ss"])
        finally:
            client.close()
        failures, successes = (int(v) if v is not None else 0 for v in raw)
        return [memory, (failures, successes if failures else 0)]


EXAMPLES = settings(max_examples=300, stateful_step_count=40, deadline=None)


def test_one_tenant_redis_memory_and_model_agree(redis_url: str) -> None:
    OneTenant.url = redis_url
    run_state_machine_as_test(OneTenant, settings=EXAMPLES)


def test_provider_wide_rules_and_buckets_agree(redis_url: str) -> None:
    ManyTenants.url = redis_url
    run_state_machine_as_test(ManyTenants, settings=EXAMPLES)


# -- the disagreements the machines found, kept as plain regression tests ----------------------


def one_tenant(url: str) -> OneTenant:
    OneTenant.url = url
    return OneTenant()


def many_tenants(url: str) -> ManyTenants:
    ManyTenants.url = url
    return ManyTenants()


def test_a_half_open_breaker_with_every_probe_out_reports_their_watchdog(redis_url: str) -> None:
    """Was: the Redis view dropped the probes, so `retry_after()` said 0 (memory: 5 s)."""
    m = one_tenant(redis_url)
    try:
        m.admin(duration=3.0)
        m.advance(seconds=5.0)
        m.admit()
        m.admit()
        m.all_three_agree()
        assert m.redis.breaker("t0").retry_after() == 5.0
    finally:
        m.teardown()


def test_a_call_admitted_before_an_admin_open_and_reset_is_late(redis_url: str) -> None:
    """Was: its 429 opened the Redis breaker again (generation 0 was never late in the
    script); the memory breaker and the model ignore it."""
    m = one_tenant(redis_url)
    try:
        m.admit()
        m.admin(duration=None)
        m.admin(duration="reset")
        m.do_finish(0, ErrorKind.RATE_LIMITED, None)
        m.all_three_agree()
        assert str(m.redis.breaker("t0").state) == "closed"
    finally:
        m.teardown()


def test_a_probe_past_its_timeout_counts_until_its_slot_is_needed(redis_url: str) -> None:
    """Was: the script reclaimed it at every admission, so its success came too late and the
    breaker stayed half-open; the memory breaker and the model close."""
    m = one_tenant(redis_url)
    try:
        m.admin(duration=3.0)
        m.advance(seconds=5.0)
        m.admit()
        m.advance(seconds=7.0)  # the first probe is now probe_timeout_s old
        m.admit()  # a free slot: nothing is reclaimed
        m.do_finish(0, None, None)
        m.all_three_agree()
        assert str(m.redis.breaker("t0").state) == "closed"
    finally:
        m.teardown()


def test_a_forced_open_breaker_refuses_before_its_open_gate(redis_url: str) -> None:
    """Was: the Redis view let the open gate refuse first (open, 10 s, provider-wide); the
    memory breaker answers with its own state (forced open, no end)."""
    m = many_tenants(redis_url)
    try:
        m.admin(tenant="t1", duration=None)
        m.admin(tenant="*", duration=3.0)
        m.advance(seconds=5.0)
        assert m.do_admit("t0")  # the gate's probe
        m.do_finish(0, ErrorKind.SERVER_ERROR, None)  # fails: the gate opens for 10 s
        assert not m.do_admit("t1")
        assert m.outcomes[-1][2] == ("refused", ("forced_open", math.inf, False))
        m.both_stores_agree()
    finally:
        m.teardown()


def test_a_success_that_was_also_the_gate_probe_counts_in_the_window(redis_url: str) -> None:
    """Was: the script settled the gate's probe but never counted the call's own success, so
    the Redis window held one call fewer and the failure rate tripped it (3 of 6 calls);
    the memory breaker counts it and stays closed (3 of 7)."""
    fail, auth = ErrorKind.SERVER_ERROR, ErrorKind.AUTH
    m = many_tenants(redis_url)
    try:
        m.calls(tenant="t1", kinds=[fail, fail])
        m.calls(tenant="t0", kinds=[fail, fail])  # a streak of 4 over 2 tenants: the gate opens
        m.advance(seconds=11.0)
        m.calls(tenant="t1", kinds=[auth, None, fail, None])  # the first None: the gate's probe
        m.calls(tenant="t1", kinds=[None, None, fail])
        m.both_stores_agree()
        assert str(m.redis.breaker("t1").state) == "closed"
    finally:
        m.teardown()


def test_a_straggler_success_does_not_end_the_streak_in_either_store(redis_url: str) -> None:
    """A call admitted before the failures and answered among them (a straggler) leaves the
    streak going in both stores: the fourth failure over two tenants opens the gate."""
    fail = ErrorKind.SERVER_ERROR
    m = many_tenants(redis_url)
    try:
        m.admit(tenant="t0")  # in flight when the provider starts failing
        m.calls(tenant="t1", kinds=[fail, fail])
        m.do_finish(0, None, None)  # the straggler: one success against two failures
        m.both_stores_follow_the_model()
        assert m.streaks() == [(2, 1), (2, 1)]
        m.calls(tenant="t2", kinds=[fail, fail])
        m.both_stores_agree()
        m.both_stores_follow_the_model()
        assert [e.reason for e in m.redis.sink.events if e.tenant_id == "*"] == ["provider_wide"]
    finally:
        m.teardown()


def test_successes_that_outnumber_the_failures_end_the_streak_in_both_stores(
    redis_url: str,
) -> None:
    """Batched successes (Redis counts them when they arrive) end it as the memory store's do."""
    fail = ErrorKind.SERVER_ERROR
    m = many_tenants(redis_url)
    try:
        m.calls(tenant="t1", kinds=[fail, fail])
        m.calls(tenant="t0", kinds=[None, None])
        assert m.streaks() == [(2, 2), (2, 2)]  # as many successes as failures: it holds
        m.calls(tenant="t0", kinds=[None])
        assert m.streaks() == [(0, 0), (0, 0)]
        m.calls(tenant="t2", kinds=[fail, fail])
        m.both_stores_follow_the_model()
        assert all(e.tenant_id != "*" for e in m.redis.sink.events)
    finally:
        m.teardown()
