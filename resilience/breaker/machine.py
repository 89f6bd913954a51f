"""The circuit breaker of one (tenant, provider) pair.

States and moves (docs/architecture.md, "Breaker rules"):

    closed ──threshold / 429──▶ open ──cooldown elapsed──▶ half_open ──probe ok──▶ closed
                                  ▲                            │
                                  └──────probe failed──────────┘  (cooldown doubles, up to max)
    any ──admin open──▶ forced_open ──duration elapsed──▶ half_open;  any ──admin reset──▶ closed

A call asks `acquire()` for a `Permit` and reports back with exactly one of
`record_success`, `record_failure` or `release` (cancelled: neutral). Permits
carry the breaker's generation, which changes at every transition, so a result
that lands after a transition (a late call) is counted in `late_results` and
otherwise ignored: it never extends a cooldown or emits a second transition.

The breaker is built for one asyncio event loop: no method awaits, so state
checks and updates are atomic with respect to other tasks, and no lock is taken
on the hot path. It is not thread-safe.

A store that shares the state between processes (`resilience.breaker.store.redis`) drives
the breaker through its public interface only, so these rules stay written once here:
`view()` and `adopt()` carry the state, `fast_permit` and `standing_refusal()` answer a call
locally, `tally()` counts a call whose verdict the store judges (docs/architecture.md,
"Shared store").

The sliding window is ten buckets kept in ints (`resilience.breaker.window`): the current bucket's
calls and failures as plain counters, the nine before packed into one int each. O(1) per
call, and nothing allocated while a breaker's calls all fall in the current bucket.
A failure counts for between 0.9 and 1.0 times `window_s` after it happened. Most
breakers never fail, so a breaker holds nothing it does not need: its closed permit of
generation 0 is shared by every breaker until its first transition.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.window import BUCKETS, rolled, total
from resilience.errors import CircuitOpenError, ErrorKind, Scope
from resilience.types import PROVIDER_WIDE, Clock, ProviderName, TenantId

_CLOSED = BreakerState.CLOSED
_OPEN = BreakerState.OPEN
_HALF_OPEN = BreakerState.HALF_OPEN
_FORCED_OPEN = BreakerState.FORCED_OPEN


class BreakerObserver(Protocol):
    """What a breaker tells its store: every transition, and trips that may go provider-wide."""

    def transitioned(self, breaker: CircuitBreaker, event: BreakerTransition) -> None: ...

    def tripped(self, breaker: CircuitBreaker, kind: ErrorKind, now: float) -> None: ...


class Permit:
    """Admission of one call: shared by ordinary calls of one generation; one per probe."""

    __slots__ = ("gate", "generation", "probe", "shared", "started_at", "token")

    def __init__(
        self,
        generation: int,
        *,
        probe: bool = False,
        started_at: float = 0.0,
        gate: Permit | None = None,
        shared: bool = False,
        token: str = "",
    ) -> None:
        self.generation = generation
        self.probe = probe
        self.started_at = started_at
        self.gate = gate
        """The provider-wide breaker's probe permit, when this call is also that probe."""
        self.shared = shared
        """Admitted under shared state (`breaker.store.redis`): its verdict goes there."""
        self.token = token
        """A shared probe's name in the store."""

    def __repr__(self) -> str:
        kind = "probe" if self.probe else "call"
        return f"Permit({kind}, generation={self.generation}, gate={self.gate is not None})"


ASK_STORE = Permit(-1)
"""What `acquire()` returns when only the shared store can decide: await `admit()` then."""

_FIRST_PERMIT = Permit(0)
"""The closed permit of every breaker that has not moved yet (never mutated: a call that
also probes the gate gets a permit of its own)."""


@dataclass(frozen=True, slots=True)
class BreakerSnapshot:
    """A breaker as the admin API shows it; times are wall-clock."""

    tenant: TenantId
    provider: ProviderName
    state: BreakerState
    failures: int
    calls: int
    opened_at: datetime | None
    retry_at: datetime | None
    cooldown_s: float | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "provider": self.provider,
            "state": str(self.state),
            "failures": self.failures,
            "calls": self.calls,
            "opened_at": self.opened_at.isoformat() if self.opened_at else None,
            "retry_at": self.retry_at.isoformat() if self.retry_at else None,
            "cooldown_s": self.cooldown_s,
        }


@dataclass(frozen=True, slots=True)
class BreakerView:
    """A breaker's state as a store shares it between processes (`CircuitBreaker.view()`,
    `adopt()`); times are relative to the moment it was taken, so any clock can read it."""

    state: BreakerState
    generation: int
    wait_s: float
    """Until the cooldown or admin open ends: 0 once it has, or while closed; inf: no end."""
    cooldown_s: float
    open_for_s: float | None
    """How long ago it opened; None while closed."""
    probe_ages: tuple[float, ...] = ()
    """Half-open: how long ago each probe still out (in any process) was admitted."""


class StreakDetail:
    """A provider-wide gate's streak beyond its count of failures: held by gates only, so a
    tenant's breaker pays one empty slot for it."""

    __slots__ = ("successes", "tenants")

    def __init__(self) -> None:
        self.tenants: set[TenantId] = set()
        """Tenants whose failures are in the streak."""
        self.successes = 0
        """The provider's successes since the streak began."""


class CircuitBreaker:
    """State machine of one (tenant, provider) pair; see the module docstring."""

    __slots__ = (
        "_bucket_end",
        "_calls",
        "_clock",
        "_cooldown",
        "_fails",
        "_gate",
        "_observer",
        "_opened_at",
        "_past_calls",
        "_past_fails",
        "_probes",
        "_retry_at",
        "_state",
        "_streak",
        "_streak_detail",
        "_wall_clock",
        "fast_permit",
        "generation",
        "late_results",
        "policy",
        "provider",
        "tenant",
    )

    def __init__(
        self,
        tenant: TenantId,
        provider: ProviderName,
        *,
        policy: BreakerPolicy,
        clock: Clock,
        wall_clock: Clock,
        observer: BreakerObserver,
        gate: CircuitBreaker | None = None,
    ) -> None:
        self.tenant = tenant
        self.provider = provider
        self.policy = policy
        self.late_results = 0
        self._clock = clock
        self._wall_clock = wall_clock
        self._observer = observer
        self._gate = gate
        self._state = _CLOSED
        self.generation = 0
        """Changes at every transition; permits carry it. Read-only: the machine sets it."""
        self.fast_permit: Permit | None = _FIRST_PERMIT
        """The permit ordinary calls share while the breaker is closed, None while it is not:
        `acquire()` returns it with no decision. Read-only: the machine sets it."""
        self._probes: list[Permit] = []
        self._opened_at: float | None = None
        self._retry_at = 0.0
        self._cooldown = policy.cooldown_s
        self._calls = 0
        """Calls in the current bucket of the window (`resilience.breaker.window`)."""
        self._fails = 0
        """Counted failures in the current bucket."""
        self._past_calls = 0
        """Calls in the nine buckets before, packed (`resilience.breaker.window.rolled`)."""
        self._past_fails = 0
        """Counted failures in the nine buckets before, packed the same way."""
        width = policy.window_s / BUCKETS
        self._bucket_end = (math.floor(clock() / width) + 1) * width
        """When the current bucket ends; the bucket is `_bucket_end / width - 1`."""
        self._streak = 0
        """On a provider-wide gate: provider-scoped failures of the current streak, over all
        tenants; 0 when no streak is under way (`_extend_streak`)."""
        self._streak_detail: StreakDetail | None = None
        """On a gate that has seen a streak: its tenants and successes (the last one's, when
        `_streak` is 0)."""

    # -- the hot path -------------------------------------------------------------------------

    def acquire(self) -> Permit:
        """Admit a call, or raise `CircuitOpenError` with the time to retry."""
        permit = self.fast_permit
        if permit is not None:  # closed
            gate = self._gate
            if gate is None or gate.fast_permit is not None:
                return permit
        return self._acquire_slow()

    async def admit(self) -> Permit:
        """`acquire()` for a breaker whose state lives in a shared store, which it may ask."""
        return self.acquire()

    def record_success(self, permit: Permit) -> None:
        if permit is self.fast_permit:
            now = self._clock()
            if now >= self._bucket_end:
                self._roll(now)
            self._calls += 1
            gate = self._gate
            if gate is not None and gate._streak:
                gate._count_streak_success()
            return
        self._settle(permit, None, None)

    def record_failure(
        self, permit: Permit, kind: ErrorKind, *, retry_after_s: float | None = None
    ) -> None:
        """Count a failed attempt; kinds that do not count on the breaker are neutral."""
        if not kind.policy.counts_on_breaker:
            self.release(permit)
            return
        if permit is self.fast_permit:
            self._count_failure(kind, retry_after_s, self._clock())
            return
        self._settle(permit, kind, retry_after_s)

    def release(self, permit: Permit) -> None:
        """The call ended without a verdict (cancelled, or the caller's own error): neutral."""
        if permit.gate is not None:
            self._gate_or_fail().release(permit.gate)
        if permit.probe and permit in self._probes:
            self._probes.remove(permit)

    # -- state, for admins and the client -------------------------------------------------------

    @property
    def state(self) -> BreakerState:
        """The current state; an elapsed cooldown shows as half_open before the next call."""
        if self._state in (_OPEN, _FORCED_OPEN) and self._clock() >= self._retry_at:
            return _HALF_OPEN
        return self._state

    def retry_after(self) -> float:
        """Seconds until this breaker (or its provider-wide gate) may admit a call; 0 if now."""
        now = self._clock()
        own = self._wait_s(now)
        gate = self._gate
        return max(own, gate._wait_s(now)) if gate is not None else own

    def failures_in_window(self) -> int:
        self._roll(self._clock())
        return self._fails + total(self._past_fails)

    def calls_in_window(self) -> int:
        self._roll(self._clock())
        return self._calls + total(self._past_calls)

    def snapshot(self) -> BreakerSnapshot:
        now = self._clock()
        wall = self._wall_clock()
        state = self.state
        waiting = state in (_OPEN, _FORCED_OPEN) or (
            state is _HALF_OPEN and self._state is not _HALF_OPEN
        )
        retry_at = None
        if waiting:
            retry_at = wall_time(wall + self._retry_at - now)
        opened_at = None
        if self._opened_at is not None and self._state is not _CLOSED:
            opened_at = wall_time(wall + self._opened_at - now)
        return BreakerSnapshot(
            tenant=self.tenant,
            provider=self.provider,
            state=state,
            failures=self.failures_in_window(),
            calls=self.calls_in_window(),
            opened_at=opened_at,
            retry_at=retry_at,
            cooldown_s=None if self._state is _CLOSED else self._cooldown,
        )

    @property
    def idle(self) -> bool:
        """Closed with no probe out: nothing is lost if the store forgets it."""
        return self._state is _CLOSED and not self._probes

    # -- shared state (docs/architecture.md, "Shared store") -----------------------------------

    def view(self) -> BreakerView:
        """The state a shared store mirrors, as of now; `adopt()` takes it back."""
        now = self._clock()
        state = self._state
        closed = state is _CLOSED
        opened_at = self._opened_at
        return BreakerView(
            state=state,
            generation=self.generation,
            wait_s=0.0 if closed else max(0.0, self._retry_at - now),
            cooldown_s=self._cooldown,
            open_for_s=None if closed or opened_at is None else now - opened_at,
            probe_ages=tuple(now - p.started_at for p in self._probes),
        )

    def adopt(self, view: BreakerView, at: float | None = None) -> None:
        """Take a state decided elsewhere (a shared store) as this breaker's, `view` having
        been true at local time `at` (default: now). Its ordinary permits are `shared`.

        No transition is emitted: whoever made it reports it, once. The probes out in every
        process are held as this breaker's (with all slots busy their watchdog is the wait);
        a closed view starts an empty window.
        """
        if at is None:
            at = self._clock()
        self._enter(view.state, view.generation, shared=True)
        self._probes[:] = [
            Permit(view.generation, probe=True, started_at=at - age) for age in view.probe_ages
        ]
        self._cooldown = view.cooldown_s
        self._retry_at = at + view.wait_s
        self._opened_at = None if view.open_for_s is None else at - view.open_for_s
        if view.state is _CLOSED:
            self._clear_window(at)

    def standing_refusal(self) -> CircuitOpenError | None:
        """The refusal a call gets now that no decision elsewhere can lift: this breaker open
        on its own failures and cooling down or, closed, behind a provider-wide gate that is.
        None where a store sharing the state must decide: a cooldown that is over, probes
        out, an admin's open (an admin may reset it from any process)."""
        now = self._clock()
        state = self._state
        if state is _OPEN and now < self._retry_at:
            return self._refusal(now)
        gate = self._gate
        if gate is not None and state is _CLOSED and gate._state is _OPEN and now < gate._retry_at:
            return self._gate_refusal(gate, now)
        return None

    def tally(self, failed: bool) -> None:
        """Count one call in the window without judging it: where a shared store judges the
        verdicts, the local window only shows them (`snapshot()`)."""
        now = self._clock()
        if now >= self._bucket_end:
            self._roll(now)
        self._calls += 1
        if failed:
            self._fails += 1

    # -- admin ---------------------------------------------------------------------------------

    def reset(self, *, actor: str | None = None, note: str | None = None) -> bool:
        """Close the breaker and forget its window. Returns whether the state changed."""
        now = self._clock()
        self._clear_window(now)
        self._cooldown = self.policy.cooldown_s
        return self._transition(
            _CLOSED, TransitionReason.ADMIN_RESET, now, actor=actor, detail=_note(note)
        )

    def force_open(
        self, *, actor: str | None = None, duration_s: float | None = None, note: str | None = None
    ) -> bool:
        """Isolate: refuse every call until reset, or for `duration_s` then probe."""
        check_duration(duration_s)
        now = self._clock()
        self._retry_at = math.inf if duration_s is None else now + duration_s
        if self._state is _FORCED_OPEN:
            return False
        self._opened_at = now  # the cooldown ladder is left alone: isolation is not a failure
        detail = _note(note)
        if duration_s is not None:
            detail = {**detail, "duration_s": duration_s}
        return self._transition(
            _FORCED_OPEN,
            TransitionReason.ADMIN_OPEN,
            now,
            actor=actor,
            detail=detail,
            cooldown_s=duration_s,
        )

    async def areset(self, *, actor: str | None = None, note: str | None = None) -> bool:
        """`reset()`, awaited where the state is shared (the store must hear of it first)."""
        return self.reset(actor=actor, note=note)

    async def aforce_open(
        self, *, actor: str | None = None, duration_s: float | None = None, note: str | None = None
    ) -> bool:
        """`force_open()`, awaited where the state is shared."""
        return self.force_open(actor=actor, duration_s=duration_s, note=note)

    def restore_forced_open(self, *, remaining_s: float | None, opened_ago_s: float) -> None:
        """Take over an admin isolation an earlier process left (`resilience.audit.restore`):
        refuse calls for `remaining_s` (None: until reset). No transition is emitted: the
        audit trail already holds the `admin_open` that began this period."""
        check_duration(remaining_s)
        now = self._clock()
        self._enter(_FORCED_OPEN, self.generation + 1)
        self._probes.clear()
        self._retry_at = math.inf if remaining_s is None else now + remaining_s
        self._opened_at = now - max(0.0, opened_ago_s)

    def _extend_streak(self, tenant: TenantId, now: float) -> None:
        """On a gate: one more provider-scoped failure in the streak (the first begins one);
        open when the streak is long and spread over enough tenants
        (`BreakerPolicy.provider_wide_streak`)."""
        detail = self._streak_detail
        if detail is None:
            detail = self._streak_detail = StreakDetail()
        elif self._streak == 0:  # the last streak ended: this failure begins a new one
            detail.tenants.clear()
            detail.successes = 0
        self._streak += 1
        tenants = detail.tenants
        tenants.add(tenant)
        policy = self.policy
        if (
            policy.provider_wide_streak
            and policy.provider_wide_min_tenants
            and self._streak >= policy.provider_wide_streak
            and len(tenants) >= policy.provider_wide_min_tenants
            and self._state is _CLOSED
        ):
            self._streak = 0
            self.open_provider_wide(now, sorted(tenants))

    def _count_streak_success(self) -> None:
        """On a gate: the provider answered a call while a streak is under way. The streak
        lives on while its failures are at least `failure_rate` of its outcomes, so answers
        to calls sent before an outage began (stragglers, which come back among the first
        failures) do not reset it; it ends once they fall below (docs/architecture.md,
        "Breaker rules")."""
        detail = self._streak_detail
        if detail is None:  # pragma: no cover - a streak under way has its detail
            return
        detail.successes += 1
        streak = self._streak
        if streak < self.policy.failure_rate * (streak + detail.successes):
            self._streak = 0

    def _answered(self) -> None:
        """One of this breaker's calls succeeded, in its generation: the gate's streak hears."""
        gate = self._gate
        if gate is not None and gate._streak:
            gate._count_streak_success()

    def open_provider_wide(self, now: float, tenants: list[TenantId]) -> bool:
        """Open this provider-wide gate: enough tenants lost the provider at once."""
        if self._state is not _CLOSED:
            return False
        return self._open(
            TransitionReason.PROVIDER_WIDE, now, None, self.policy.cooldown_s, tenants
        )

    # -- internals -----------------------------------------------------------------------------

    def _acquire_slow(self) -> Permit:
        now = self._clock()
        own = self._admit(now)
        gate = self._gate
        if gate is None:
            return own
        try:
            gate_permit = gate._admit(now)
        except CircuitOpenError:
            self.release(own)
            raise self._gate_refusal(gate, now) from None
        if gate_permit is gate.fast_permit:
            return own
        if own is self.fast_permit:
            return Permit(own.generation, gate=gate_permit)
        own.gate = gate_permit
        return own

    def _admit(self, now: float) -> Permit:
        state = self._state
        closed = self.fast_permit
        if closed is not None:  # the state is closed
            return closed
        if state is not _HALF_OPEN:
            if now < self._retry_at:
                raise self._refusal(now)
            self._transition(_HALF_OPEN, TransitionReason.COOLDOWN_ELAPSED, now)
        probes = self._probes
        if len(probes) >= self.policy.half_open_max_calls:
            timeout = self.policy.probe_timeout_s
            probes[:] = [p for p in probes if now - p.started_at < timeout]
            if len(probes) >= self.policy.half_open_max_calls:
                raise self._refusal(now)
        permit = Permit(self.generation, probe=True, started_at=now)
        probes.append(permit)
        return permit

    def _gate_refusal(self, gate: CircuitBreaker, now: float) -> CircuitOpenError:
        """This pair's call, refused by the provider-wide gate."""
        return CircuitOpenError(
            tenant=self.tenant,
            provider=self.provider,
            state=gate._state,
            retry_after_s=gate._wait_s(now),
            provider_wide=True,
        )

    def _refusal(self, now: float) -> CircuitOpenError:
        return CircuitOpenError(
            tenant=self.tenant,
            provider=self.provider,
            state=self._state,
            retry_after_s=self._wait_s(now),
            provider_wide=self.tenant == PROVIDER_WIDE,
        )

    def _wait_s(self, now: float) -> float:
        """Seconds until a call could be admitted: cooldown left, or the busy probes' watchdog."""
        if self._state is _CLOSED:
            return 0.0
        if self._state is _HALF_OPEN:
            if len(self._probes) < self.policy.half_open_max_calls:
                return 0.0
            oldest = min(p.started_at for p in self._probes)
            watchdog = oldest + self.policy.probe_timeout_s - now
            return max(0.0, min(watchdog, self._cooldown))
        wait = self._retry_at - now
        # a finite wait past any legal one (a state written before durations were bounded)
        # still makes a header of a few digits; inf stays inf: an open without an end
        return wait if wait == math.inf else max(0.0, min(wait, MAX_DURATION_S))

    def _settle(self, permit: Permit, kind: ErrorKind | None, retry_after_s: float | None) -> None:
        """Slow path of a result: a probe, a call that also probes the gate, or a late result."""
        if permit.gate is not None:
            gate = self._gate_or_fail()
            if kind is None:
                gate._settle(permit.gate, None, None)
            elif kind.policy.scope is Scope.PROVIDER:
                gate._settle(permit.gate, kind, retry_after_s)
            else:
                gate.release(permit.gate)
        if permit.generation != self.generation:
            self.late_results += 1
            return
        now = self._clock()
        if not permit.probe:
            if kind is None:
                self.tally(False)
                self._answered()
            else:
                self._count_failure(kind, retry_after_s, now)
            return
        if permit not in self._probes:
            self.late_results += 1  # reclaimed by the probe watchdog
            return
        self._probes.remove(permit)
        if kind is None:
            self._answered()
            self._clear_window(now)
            self._cooldown = self.policy.cooldown_s
            self._transition(_CLOSED, TransitionReason.PROBE_SUCCEEDED, now)
        elif kind is ErrorKind.RATE_LIMITED:
            self._open(
                TransitionReason.RETRY_AFTER, now, kind, self._retry_after_cooldown(retry_after_s)
            )
        else:
            cooldown = min(self._cooldown * 2, self.policy.max_cooldown_s)
            self._open(TransitionReason.PROBE_FAILED, now, kind, cooldown)

    def _count_failure(self, kind: ErrorKind, retry_after_s: float | None, now: float) -> None:
        if now >= self._bucket_end:
            self._roll(now)
        self._calls += 1
        self._fails += 1
        gate = self._gate
        if gate is not None and kind.policy.scope is Scope.PROVIDER:
            gate._extend_streak(self.tenant, now)
        if kind is ErrorKind.RATE_LIMITED:
            cooldown = self._retry_after_cooldown(retry_after_s)
            self._open(TransitionReason.RETRY_AFTER, now, kind, cooldown)
            return
        fails = self._fails + total(self._past_fails)
        policy = self.policy
        if fails >= policy.failure_threshold and fails >= policy.failure_rate * (
            self._calls + total(self._past_calls)
        ):
            self._open(TransitionReason.THRESHOLD, now, kind, self._cooldown)
            if kind.policy.scope is Scope.PROVIDER:
                self._observer.tripped(self, kind, now)

    def _retry_after_cooldown(self, retry_after_s: float | None) -> float:
        if retry_after_s is None:
            return self._cooldown
        return min(max(retry_after_s, 0.0), self.policy.max_cooldown_s)

    def _open(
        self,
        reason: TransitionReason,
        now: float,
        kind: ErrorKind | None,
        cooldown: float,
        tenants: list[TenantId] | None = None,
    ) -> bool:
        if reason is not TransitionReason.RETRY_AFTER:
            self._cooldown = cooldown
        self._retry_at = now + cooldown
        self._opened_at = now
        self._probes.clear()
        detail: dict[str, Any] = {"calls": self._calls + total(self._past_calls)}
        if tenants is not None:
            detail["tenants"] = tenants
        return self._transition(_OPEN, reason, now, kind=kind, cooldown_s=cooldown, detail=detail)

    def _transition(
        self,
        to: BreakerState,
        reason: TransitionReason,
        now: float,
        *,
        kind: ErrorKind | None = None,
        actor: str | None = None,
        cooldown_s: float | None = None,
        detail: dict[str, Any] | None = None,
    ) -> bool:
        source = self._state
        if source is to:
            return False
        self._enter(to, self.generation + 1)
        self._streak = 0  # a gate's streak starts over at each of its moves
        if to is not _HALF_OPEN:
            self._probes.clear()
        event = BreakerTransition(
            tenant_id=self.tenant,
            provider=self.provider,
            from_state=source,
            to_state=to,
            reason=reason,
            occurred_at=_to_datetime(self._wall_clock()),
            failures=self._fails + total(self._past_fails),
            error_kind=kind,
            cooldown_s=cooldown_s,
            actor=actor,
            detail=detail or {},
        )
        self._observer.transitioned(self, event)
        return True

    def _enter(self, state: BreakerState, generation: int, *, shared: bool = False) -> None:
        """The one place state and generation change: the closed permit goes with them."""
        self._state = state
        self.generation = generation
        self.fast_permit = Permit(generation, shared=shared) if state is _CLOSED else None

    def _roll(self, now: float) -> None:
        """Move the window to the bucket holding `now`, shifting the counts of older buckets."""
        width = self.policy.window_s / BUCKETS
        bucket = math.floor(now / width)
        # _bucket_end is (bucket + 1) * width: dividing back is off by far less than 0.5
        steps = bucket - (round(self._bucket_end / width) - 1)
        if steps <= 0:
            return
        self._past_calls = rolled(self._past_calls, self._calls, steps)
        self._past_fails = rolled(self._past_fails, self._fails, steps)
        self._calls = self._fails = 0
        self._bucket_end = (bucket + 1) * width

    def _clear_window(self, now: float) -> None:
        self._roll(now)
        self._calls = self._fails = self._past_calls = self._past_fails = 0

    def _gate_or_fail(self) -> CircuitBreaker:
        if self._gate is None:  # pragma: no cover - a gate permit implies a gate
            raise RuntimeError("permit names a provider-wide gate this breaker does not have")
        return self._gate

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.tenant!r}, {self.provider!r}, state={self._state})"


MAX_DURATION_S = 30 * 86_400
"""The longest admin open with an end (30 days): its retry time is always a representable
date and a short `Retry-After`. Longer isolation is an open without an end (until reset)."""


def check_duration(duration_s: object) -> None:
    """An admin open's `duration_s`: None (no end: until reset) or a number of seconds in
    (0, `MAX_DURATION_S`]. Checked before anything acts, in every store."""
    if duration_s is None:
        return
    # comparisons, not float(): NaN and inf fail them, and a 400-digit int does not overflow
    if (
        isinstance(duration_s, bool)
        or not isinstance(duration_s, int | float)
        or not 0 < duration_s <= MAX_DURATION_S
    ):
        raise ValueError(
            f"duration_s: expected seconds, more than 0 and at most {MAX_DURATION_S} (30 days), "
            f"or null for no end (until reset); got {_shown(duration_s)}"
        )


def wall_time(seconds: float) -> datetime | None:
    """A wall-clock time in seconds since the epoch as a UTC datetime, or None when no
    datetime can hold it (inf: no end; or past year 9999)."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _shown(value: object) -> str:
    """A refused value in an error message: short, ASCII, never the value's own huge text."""
    if isinstance(value, float) or (isinstance(value, int) and abs(value) < 10**15):
        return repr(value)
    return "a huge integer" if isinstance(value, int) else f"a {type(value).__name__}"


def _to_datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def _note(note: str | None) -> dict[str, Any]:
    return {"note": note} if note else {}
