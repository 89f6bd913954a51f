"""Bulkheads: how many calls each provider gets at once, shared fairly between tenants.

Every call to a provider passes through that provider's `ProviderGate` before it is sent;
all tenants share the gate, as they share the provider's connection pool. `acquire`
returns a `Slot`, which the caller ends with its verdict, or a `Refusal`, with no call made:

- `Refusal.TENANT_LIMIT`: the tenant already holds its own cap (`tenant_limit`, else
  `BulkheadPolicy.max_concurrent_per_tenant`), counting its calls in flight and waiting.
  Refused at once: waiting would only wait for the tenant's own calls. When this is the
  only reason nothing was tried, the gateway answers 429.
- `Refusal.PROVIDER_LIMIT`: the provider's learned limit is full and no slot came within
  the wait (`max_wait_s`, which callers cut to what is left of the request's deadline).

Fairness. Waiters queue per tenant, first in first out, and the tenants with waiters take
turns (round robin): a freed slot goes to the oldest waiter of the tenant whose turn it is,
and that tenant moves to the back. So a quiet tenant's call waits behind at most one call of
each other waiting tenant, however long their backlogs. Turns alone do not help when every
slot is held by calls that take seconds: nothing frees for the quiet tenant's turn. So a
reserve, `RESERVE_SHARE` (10%) of the limit and at least one slot, is kept for tenants that
hold no slot at all: a tenant already holding some is admitted only below `limit - reserve`.
A tenant alone may use the rest: the limit less a tenth of it rounded up (18 of 20, 9 of
11, 1 of 2, the whole of a limit of 1).
`Slot.release` hands the freed slot to the next waiter's future at once; there is no
polling, and the only timer is each waiter's wait.

The adaptive limit is AIMD, as TCP's congestion window (the same problem: how much to send
to a peer whose capacity shows only in what comes back). It starts at `initial_limit` and
stays within `[min_limit, max_limit]`; `limit` is its integer part.

- Growth, on `success`: +1 per success below the slow-start threshold (`max_limit` until
  the first decrease), so the limit doubles each round trip while the load wants more;
  +1/limit per success above it, about +1 per round trip (the additive increase).
- Only successes of calls that met the limit binding count toward growth: calls waited,
  or `in_flight >= limit * BINDING_SHARE` (0.5, the call itself included), when the call
  was admitted or when it ended. A success at low concurrency says nothing about whether
  more would be served; counting it would let the limit drift to `max_limit` while idle,
  and the next burst against a dying provider would send that many calls. The limit so
  stays within about twice the concurrency in use, and still grows under any load that
  fills it (Netflix concurrency-limits' AIMDLimit has the same half-the-limit rule, at
  admission only). Both ends are looked at because either alone misses a full round trip:
  a burst's first calls found an idle gate, and a round's last calls end on an emptied one.
- Decrease, on `overload` (a timeout, a 5xx, a network failure, "overloaded"): limit x
  `DECREASE_FACTOR` (0.5), floored at `min_limit`; the slow-start threshold becomes
  `max(new limit, initial_limit)`, so after an outage the limit is back at its configured
  start within a few round trips and grows additively beyond it. At most one decrease per
  round trip: each decrease starts a new generation, and an overload from a call admitted
  in an earlier generation is ignored (it was sent before the evidence came back, as TCP
  halves once per window of data).
- `neutral` (the caller's error, a cancellation, a 4xx) changes nothing.

So a provider that has just died receives at most `limit` calls before the first failure
comes back (`initial_limit` on a fresh gate; after a busy spell up to about twice the
concurrency that was in use); then the limit halves, while the breaker gets its evidence.

Several processes: each has its own gates, as it has its own connection pool, so the limits
are per process. Size them per process: `max_limit` at most the pool's connections,
`initial_limit` and the tenant caps the wanted total divided by the number of workers.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import math
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from resilience.errors import ErrorKind
from resilience.types import Clock, ProviderName, TenantId

DECREASE_FACTOR = 0.5
"""The limit is multiplied by this on an overload (once per round trip)."""
BINDING_SHARE = 0.5
"""A success grows the limit only if, when its call began or ended, calls waited or
`in_flight >= limit * this`."""
RESERVE_SHARE = 0.1
"""The share of the limit (at least one slot, from a limit of 2) kept for tenants holding no
slot at all: what lets a quiet tenant in while another's slow calls fill the gate."""
HOLD_EWMA_WEIGHT = 0.2
"""Weight of the newest call in `ProviderGate.hold_s`."""
MAX_SNAPSHOT_TENANTS = 100
"""Tenants a snapshot lists (the busiest); `tenants_total` counts them all."""

Outcome = Literal["success", "overload", "neutral"]
OUTCOMES: frozenset[str] = frozenset(("success", "overload", "neutral"))


class Refusal(enum.StrEnum):
    """Why `ProviderGate.acquire` made no call; the value is the outcome's name."""

    TENANT_LIMIT = "tenant_limit"
    PROVIDER_LIMIT = "provider_limit"


def _check_int(name: str, value: object, lowest: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < lowest:
        raise ValueError(f"{name}: must be an integer >= {lowest}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BulkheadPolicy:
    """One provider's concurrency: tenants' caps, the wait, and the adaptive limit's range."""

    max_concurrent_per_tenant: int | None = None
    """Default cap on one tenant's calls (in flight and waiting) to one provider; None: none."""
    max_wait_s: float = 1.0
    """How long a call may wait for a slot before the target is skipped (never past the
    request's deadline). Long enough for a healthy burst to queue while the limit grows
    (it doubles each round trip), short enough that a full provider hands the call to the
    fallback while it can still answer in time."""
    initial_limit: int = 20
    min_limit: int = 1
    max_limit: int = 200
    """Never above the provider's connection pool (200 connections by default)."""

    def __post_init__(self) -> None:
        if self.max_concurrent_per_tenant is not None:
            _check_int("max_concurrent_per_tenant", self.max_concurrent_per_tenant, 1)
        wait = self.max_wait_s
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < math.inf:
            raise ValueError(f"max_wait_s: must be a finite number >= 0, got {wait!r}")
        _check_int("min_limit", self.min_limit, 1)
        _check_int("max_limit", self.max_limit, self.min_limit)
        _check_int("initial_limit", self.initial_limit, self.min_limit)
        if self.initial_limit > self.max_limit:
            raise ValueError(
                f"initial_limit: must be <= max_limit ({self.max_limit}), "
                f"got {self.initial_limit!r}"
            )


class _Waiter:
    __slots__ = ("future", "timer")

    def __init__(self, future: asyncio.Future[Slot | None]) -> None:
        self.future = future
        self.timer: asyncio.TimerHandle | None = None

    def stop_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()


class _Tenant:
    """One tenant's calls on one gate; dropped once it has none in flight and none waiting."""

    __slots__ = ("in_flight", "queue")

    def __init__(self) -> None:
        self.in_flight = 0
        self.queue: OrderedDict[_Waiter, None] = OrderedDict()


class Slot:
    """One admitted call. Exactly one `release` ends it; a second does nothing."""

    __slots__ = ("_entry", "_gate", "admitted_at", "binding", "generation", "released", "tenant")

    def __init__(
        self,
        gate: ProviderGate,
        tenant: TenantId,
        entry: _Tenant,
        *,
        generation: int,
        binding: bool,
        admitted_at: float,
    ) -> None:
        self._gate = gate
        self._entry = entry
        self.tenant = tenant
        self.generation = generation
        """The gate's decreases before this call was admitted: its overload counts only if
        there has been none since."""
        self.binding = binding
        """Whether the limit bound when this call was admitted."""
        self.admitted_at = admitted_at
        self.released = False

    def release(self, outcome: Outcome) -> None:
        """End the call: `success` may grow the limit, `overload` halve it, `neutral` neither.

        Args:
            outcome: `success`; `overload` for a timeout, a 5xx, a network failure or an
                overloaded answer; `neutral` for the caller's error, a cancellation, a 4xx.
        """
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome: must be one of {sorted(OUTCOMES)}, got {outcome!r}")
        if self.released:
            return
        self.released = True
        self._gate._settle(self, self._entry, outcome)

    def __repr__(self) -> str:
        state = "released" if self.released else "held"
        return f"<Slot {self._gate.provider} tenant={self.tenant!r} {state}>"


class ProviderGate:
    """One provider's concurrency gate, shared by every tenant. Event-loop thread only."""

    def __init__(
        self, provider: ProviderName, policy: BulkheadPolicy, *, clock: Clock = time.monotonic
    ) -> None:
        self.provider = provider
        self.policy = policy
        self._clock = clock
        self._limit = float(policy.initial_limit)
        self._threshold = float(policy.max_limit)
        self._generation = 0
        self._in_flight = 0
        self._waiting = 0
        self._tenants: dict[TenantId, _Tenant] = {}
        self._turns: OrderedDict[TenantId, _Tenant] = OrderedDict()
        """Tenants with waiters, in the order of their turns."""
        self._hold_s: float | None = None
        self._admitted = 0
        self._decreases = 0
        self._refused = dict.fromkeys(Refusal, 0)

    @property
    def limit(self) -> int:
        """The learned limit on calls in flight now."""
        return int(self._limit)

    @property
    def in_flight(self) -> int:
        return self._in_flight

    @property
    def waiting(self) -> int:
        return self._waiting

    @property
    def hold_s(self) -> float | None:
        """How long a call typically holds its slot (a moving average; None before any
        ended): a Retry-After for a tenant refused at its own cap."""
        return self._hold_s

    @property
    def refused(self) -> dict[Refusal, int]:
        """Calls refused since the gate was made, by reason."""
        return dict(self._refused)

    def in_flight_of(self, tenant: TenantId) -> int:
        entry = self._tenants.get(tenant)
        return entry.in_flight if entry is not None else 0

    def waiting_of(self, tenant: TenantId) -> int:
        entry = self._tenants.get(tenant)
        return len(entry.queue) if entry is not None else 0

    async def acquire(
        self, tenant: TenantId, *, max_wait_s: float | None = None, tenant_limit: int | None = None
    ) -> Slot | Refusal:
        """A slot for one call of `tenant`, or why there is none (no call may be made).

        Args:
            tenant: whose call; fairness and caps are per tenant.
            max_wait_s: how long to wait while the provider is full; default the policy's.
                Callers pass `min(policy.max_wait_s, time left before the deadline)`; zero
                or less refuses at once.
            tenant_limit: this tenant's own cap here, instead of the policy's default.
        """
        if tenant_limit is not None:
            _check_int("tenant_limit", tenant_limit, 1)
        cap = self.policy.max_concurrent_per_tenant if tenant_limit is None else tenant_limit
        entry = self._tenants.get(tenant)
        if entry is None:
            entry = self._tenants[tenant] = _Tenant()
        elif cap is not None and entry.in_flight + len(entry.queue) >= cap:
            return self._refuse(Refusal.TENANT_LIMIT)
        # a free slot with tenants waiting is one only a tenant holding nothing may take
        # (`_drain` leaves none a waiter could use), so turns need not be asked here
        if self._in_flight < self._room(entry):
            return self._admit(tenant, entry)
        wait = self.policy.max_wait_s if max_wait_s is None else max_wait_s
        if not wait > 0:  # NaN included
            self._drop_if_idle(tenant, entry)
            return self._refuse(Refusal.PROVIDER_LIMIT)
        return await self._wait(tenant, entry, wait)

    async def _wait(self, tenant: TenantId, entry: _Tenant, wait_s: float) -> Slot | Refusal:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Slot | None] = loop.create_future()
        waiter = _Waiter(future)
        waiter.timer = loop.call_later(wait_s, self._expire, tenant, entry, waiter)
        entry.queue[waiter] = None
        self._waiting += 1
        self._turns.setdefault(tenant, entry)  # at the back, unless it already has a turn
        self._drain()  # a tenant holding nothing may take a reserved slot the others cannot
        try:
            slot = await future
        except asyncio.CancelledError:
            self._abandon(tenant, entry, waiter)
            raise
        return slot if slot is not None else self._refuse(Refusal.PROVIDER_LIMIT)

    def _expire(self, tenant: TenantId, entry: _Tenant, waiter: _Waiter) -> None:
        if waiter.future.done():
            return
        self._unqueue(tenant, entry, waiter)
        waiter.future.set_result(None)

    def _abandon(self, tenant: TenantId, entry: _Tenant, waiter: _Waiter) -> None:
        """A waiting task was cancelled: leave the queue, or pass on a slot granted meanwhile."""
        waiter.stop_timer()
        future = waiter.future
        if future.done() and not future.cancelled():
            slot = future.result()
            if slot is not None:
                slot.release("neutral")
            return
        self._unqueue(tenant, entry, waiter)

    def _unqueue(self, tenant: TenantId, entry: _Tenant, waiter: _Waiter) -> None:
        if waiter not in entry.queue:
            return
        del entry.queue[waiter]
        self._waiting -= 1
        if not entry.queue:
            self._turns.pop(tenant, None)
        self._drop_if_idle(tenant, entry)

    def _drop_if_idle(self, tenant: TenantId, entry: _Tenant) -> None:
        if entry.in_flight == 0 and not entry.queue and self._tenants.get(tenant) is entry:
            del self._tenants[tenant]

    def _refuse(self, refusal: Refusal) -> Refusal:
        self._refused[refusal] += 1
        return refusal

    def _admit(self, tenant: TenantId, entry: _Tenant) -> Slot:
        self._in_flight += 1
        entry.in_flight += 1
        self._admitted += 1
        return Slot(
            self,
            tenant,
            entry,
            generation=self._generation,
            binding=self._waiting > 0 or self._in_flight >= self._limit * BINDING_SHARE,
            admitted_at=self._clock(),
        )

    def _settle(self, slot: Slot, entry: _Tenant, outcome: Outcome) -> None:
        binding = (
            slot.binding or self._waiting > 0 or self._in_flight >= self._limit * BINDING_SHARE
        )
        self._in_flight -= 1
        entry.in_flight -= 1
        if outcome != "neutral":
            held = self._clock() - slot.admitted_at
            last = self._hold_s
            self._hold_s = held if last is None else last + HOLD_EWMA_WEIGHT * (held - last)
            if outcome == "success":
                if binding:
                    self._grow()
            elif slot.generation == self._generation:
                self._shrink()
        self._drain()
        self._drop_if_idle(slot.tenant, entry)

    def _grow(self) -> None:
        if self._limit < self._threshold:
            grown = min(self._threshold, self._limit + 1.0)
        else:
            grown = self._limit + 1.0 / self._limit
        self._limit = min(float(self.policy.max_limit), grown)

    def _shrink(self) -> None:
        if self._limit <= self.policy.min_limit:
            return  # nothing to decrease, so no new generation either
        self._limit = max(float(self.policy.min_limit), self._limit * DECREASE_FACTOR)
        self._threshold = max(self._limit, float(self.policy.initial_limit))
        self._generation += 1
        self._decreases += 1

    def _room(self, entry: _Tenant) -> int:
        """The calls in flight under which `entry`'s tenant may be admitted: the whole limit
        for a tenant holding nothing, the limit less the reserve for one already holding
        some. So a quiet tenant's call finds a slot even while another tenant's slow calls
        hold all the rest, with no preemption and whatever the length of those calls."""
        limit = self.limit
        if entry.in_flight == 0 or limit < 2:
            return limit
        return limit - math.ceil(limit * RESERVE_SHARE)

    def _drain(self) -> None:
        """Hand free slots to waiters, one per tenant in turn, skipping tenants that only the
        reserve could serve."""
        while self._turns and self._in_flight < self.limit:
            found = next(
                (t for t, e in self._turns.items() if self._in_flight < self._room(e)), None
            )
            if found is None:
                return
            entry = self._turns.pop(found)
            tenant = found
            waiter, _ = entry.queue.popitem(last=False)
            self._waiting -= 1
            if entry.queue:
                self._turns[tenant] = entry
            if waiter.future.done():  # its task was cancelled and has not run yet
                if entry.queue:
                    self._turns.move_to_end(tenant, last=False)  # keep the turn
                self._drop_if_idle(tenant, entry)
                continue
            waiter.stop_timer()
            waiter.future.set_result(self._admit(tenant, entry))

    def snapshot(self) -> dict[str, object]:
        """Figures for `/admin/providers` and `/metrics`, the busiest tenants listed."""
        busiest = heapq.nlargest(
            MAX_SNAPSHOT_TENANTS,
            self._tenants.items(),
            key=lambda item: item[1].in_flight + len(item[1].queue),
        )
        return {
            "provider": self.provider,
            "limit": self.limit,
            "in_flight": self._in_flight,
            "waiting": self._waiting,
            "min_limit": self.policy.min_limit,
            "max_limit": self.policy.max_limit,
            "hold_ms": None if self._hold_s is None else self._hold_s * 1000.0,
            "admitted_total": self._admitted,
            "decreases_total": self._decreases,
            "refused_total": {refusal.value: n for refusal, n in self._refused.items()},
            "tenants": {
                tenant: {"in_flight": entry.in_flight, "waiting": len(entry.queue)}
                for tenant, entry in sorted(busiest)
            },
            "tenants_total": len(self._tenants),
        }

    def __repr__(self) -> str:
        return (
            f"<ProviderGate {self.provider} limit={self.limit} "
            f"in_flight={self._in_flight} waiting={self._waiting}>"
        )


class Bulkheads:
    """One `ProviderGate` per provider, made on first use with that provider's policy."""

    def __init__(
        self,
        policy: BulkheadPolicy | None = None,
        *,
        per_provider: Mapping[ProviderName, BulkheadPolicy] | None = None,
        clock: Clock = time.monotonic,
    ) -> None:
        self.policy = policy if policy is not None else BulkheadPolicy()
        self._per_provider = dict(per_provider or {})
        self._clock = clock
        self._gates: dict[ProviderName, ProviderGate] = {}

    def gate(self, provider: ProviderName) -> ProviderGate:
        found = self._gates.get(provider)
        if found is None:
            policy = self._per_provider.get(provider, self.policy)
            found = self._gates[provider] = ProviderGate(provider, policy, clock=self._clock)
        return found

    def snapshot(self) -> dict[ProviderName, dict[str, object]]:
        return {name: gate.snapshot() for name, gate in sorted(self._gates.items())}

    def __len__(self) -> int:
        return len(self._gates)


_OVERLOAD = frozenset(
    {
        ErrorKind.TIMEOUT,
        ErrorKind.NETWORK,
        ErrorKind.OVERLOADED,
        ErrorKind.SERVER_ERROR,
        ErrorKind.STREAM_INTERRUPTED,
    }
)


def slot_outcome(kind: ErrorKind) -> Outcome:
    """How a failed call ends its slot: `overload` for what says the provider has too much to
    do (a timeout, a dropped connection, a 5xx, an overloaded answer, a stream cut short);
    `neutral` for the rest: the caller's errors, a rate limit (a quota of the key, not a
    sign of concurrency), a cancellation."""
    return "overload" if kind in _OVERLOAD else "neutral"
