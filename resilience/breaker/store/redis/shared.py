"""This process's view of breakers whose state lives in Redis (docs/architecture.md,
"Shared store").

A `SharedBreaker` is the ordinary state machine (`resilience.breaker.machine`) fed from
Redis through the machine's public interface only: `adopt()` takes a state `breakers.lua`
decided, `fast_permit` and `standing_refusal()` answer a call without a round trip,
`tally()` counts a call whose verdict Redis judges. The rules of the breaker stay written
once, in the machine (`tests/breaker/store/test_public_interface.py` holds it). `Mirror` is
the index of shared breakers that are not closed, so listings show breakers other processes
opened. Talking to Redis is `RedisStore`'s job (`store.py`).
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from resilience.breaker.events import BreakerState
from resilience.breaker.machine import (
    ASK_STORE,
    BreakerView,
    CircuitBreaker,
    Permit,
    check_duration,
)
from resilience.breaker.policy import BreakerPolicy
from resilience.errors import ErrorKind
from resilience.types import BreakerKey, Clock, ProviderName, TenantId

if TYPE_CHECKING:
    from resilience.breaker.store.redis.store import RedisStore

_CLOSED = BreakerState.CLOSED


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedView(BreakerView):
    """A breaker as the script reported it; times are relative to the moment it ran."""

    tenant: TenantId
    provider: ProviderName
    failures: int
    calls: int

    @classmethod
    def parse(cls, raw: dict[str, Any]) -> SharedView:
        ages = raw.get("pa")  # an empty Lua table comes as {}: no probes
        return cls(
            tenant=str(raw["t"]),
            provider=str(raw["p"]),
            state=BreakerState(raw["s"]),
            generation=int(raw["g"]),
            wait_s=math.inf if raw["w"] < 0 else float(raw["w"]),
            cooldown_s=float(raw["cd"]),
            open_for_s=None if raw["of"] < 0 else float(raw["of"]),
            failures=int(raw["f"]),
            calls=int(raw["c"]),
            probe_ages=tuple(float(a) for a in ages) if isinstance(ages, list) else (),
        )

    @classmethod
    def closed(cls, breaker: CircuitBreaker) -> SharedView:
        """What Redis holds of a pair it has no key for: closed, generation 0."""
        return cls(
            tenant=breaker.tenant,
            provider=breaker.provider,
            state=_CLOSED,
            generation=0,
            wait_s=0.0,
            cooldown_s=breaker.policy.cooldown_s,
            open_for_s=None,
            failures=0,
            calls=0,
        )


class Mirror:
    """The shared breakers that are not closed, as last heard, with the local time heard."""

    __slots__ = ("_views",)

    def __init__(self) -> None:
        self._views: dict[BreakerKey, tuple[SharedView, float]] = {}

    def hear(self, view: SharedView, at: float) -> None:
        key = (view.tenant, view.provider)
        if view.state is _CLOSED:
            self._views.pop(key, None)
        else:
            self._views[key] = (view, at)

    def reload(self, views: list[SharedView], at: float) -> None:
        """Replace the index with the `mirror` op's answer (every key not closed)."""
        self._views = {(view.tenant, view.provider): (view, at) for view in views}

    def get(self, tenant: TenantId, provider: ProviderName) -> tuple[SharedView, float] | None:
        return self._views.get((tenant, provider))

    def pairs(self) -> list[BreakerKey]:
        return list(self._views)

    def __len__(self) -> int:
        return len(self._views)


class SharedBreaker(CircuitBreaker):
    """A breaker whose state lives in Redis; the machine's state is this process's view of it.

    While the store is offline it is an ordinary process-local breaker.
    """

    __slots__ = (
        "_first_generation",
        "_provider_gate",
        "_store",
        "_verdicts",
        "unsent_successes",
    )

    def __init__(
        self,
        tenant: TenantId,
        provider: ProviderName,
        *,
        store: RedisStore,
        policy: BreakerPolicy,
        clock: Clock,
        wall_clock: Clock,
        gate: CircuitBreaker | None,
    ) -> None:
        super().__init__(
            tenant,
            provider,
            policy=policy,
            clock=clock,
            wall_clock=wall_clock,
            observer=store,
            gate=gate,
        )
        self._store = store
        self._provider_gate = gate
        """The provider-wide gate, read by the fast path of `acquire()`."""
        self.unsent_successes = 0
        """Successes counted here and not yet sent to Redis."""
        self._verdicts: set[asyncio.Task[None]] = set()
        """Verdicts sent and not yet answered: until they are, admission asks Redis."""
        self._first_generation = 0
        """The generation of the first shared view this breaker took (0: none yet)."""
        if store.online:
            self.adopt(SharedView.closed(self))  # its permits are shared from the start

    # -- admission ---------------------------------------------------------------------------

    def acquire(self) -> Permit:
        permit = self.fast_permit
        if permit is not None and not self._verdicts:
            gate = self._provider_gate
            if gate is None or gate.fast_permit is not None:
                return permit
        return self._ask()

    def _ask(self) -> Permit:
        """`acquire()` when this view cannot admit on its own."""
        if not self._store.online:
            return super().acquire()
        # a refusal no other process can lift (a cooldown still running) is answered here
        refusal = self.standing_refusal()
        if refusal is not None:
            raise refusal
        # a cooldown is over, probes are out, an admin opened it (and may have reset it a
        # moment ago from another process), or this process's last failures are still on
        # their way (they may trip it): only Redis knows who goes
        return ASK_STORE

    async def admit(self) -> Permit:
        if self._store.online:
            return await self._store.admit(self)
        return self.acquire()

    # -- verdicts ----------------------------------------------------------------------------

    def record_success(self, permit: Permit) -> None:
        store = self._store
        if not store.online:
            super().record_success(permit)
        elif permit.token or (permit.gate is not None and permit.gate.token):
            self._track(store.settle(self, permit, None, None))
        elif permit.shared:
            # the permit of this generation (the common case) is never late
            if permit is not self.fast_permit and self.shared_generation(permit) < self.generation:
                self.late_results += 1  # its breaker moved on since: not this window's call
                return
            self.tally(False)
            if not self.unsent_successes:
                store.unsent.append(self)
            self.unsent_successes += 1

    def record_failure(
        self, permit: Permit, kind: ErrorKind, *, retry_after_s: float | None = None
    ) -> None:
        store = self._store
        if not store.online:
            super().record_failure(permit, kind, retry_after_s=retry_after_s)
        elif not kind.policy.counts_on_breaker:
            self.release(permit)
        elif permit.shared:
            if (
                not permit.token
                and permit.gate is None
                and self.shared_generation(permit) < self.generation
            ):
                self.late_results += 1  # late, as this view already knows: Redis need not hear
                return
            self.tally(True)
            self._track(store.settle(self, permit, kind, retry_after_s))

    def release(self, permit: Permit) -> None:
        store = self._store
        if not store.online:
            super().release(permit)
            return
        gate_token = permit.gate.token if permit.gate is not None else ""
        if permit.token or gate_token:
            store.spawn(store.release(self, permit.token, gate_token))

    def shared_generation(self, permit: Permit) -> int:
        """The permit's generation in Redis's numbering. One admitted before this view first
        heard from Redis carries 0: it belongs to the generation first heard, so a transition
        since (one this view saw) makes it late, as it does in a memory breaker."""
        return permit.generation or self._first_generation

    @property
    def pending(self) -> bool:
        """Verdicts of this process are on their way to Redis (they may trip the breaker)."""
        return bool(self._verdicts)

    def _track(self, verdict: asyncio.Task[None]) -> None:
        self._verdicts.add(verdict)
        verdict.add_done_callback(self._verdicts.discard)

    async def answered(self) -> None:
        """Wait until Redis has answered every verdict this process sent for the breaker."""
        if self._verdicts:
            await asyncio.wait(list(self._verdicts))

    # -- admin -------------------------------------------------------------------------------

    def reset(self, *, actor: str | None = None, note: str | None = None) -> bool:
        """Refused: a shared breaker changes in Redis first, so only `await areset()` can."""
        raise TypeError("a shared breaker is reset with `await areset()`")

    def force_open(
        self, *, actor: str | None = None, duration_s: float | None = None, note: str | None = None
    ) -> bool:
        """Refused: a shared breaker changes in Redis first, so only `await aforce_open()` can."""
        raise TypeError("a shared breaker is forced open with `await aforce_open()`")

    async def areset(self, *, actor: str | None = None, note: str | None = None) -> bool:
        detail = {"note": note} if note else {}
        changed = await self._store.change(self, "reset", (), actor=actor, detail=detail)
        if changed is None:  # Redis is away: this process's breaker is all there is
            return super().reset(actor=actor, note=note)
        return changed

    async def aforce_open(
        self, *, actor: str | None = None, duration_s: float | None = None, note: str | None = None
    ) -> bool:
        check_duration(duration_s)
        detail: dict[str, Any] = {"note": note} if note else {}
        if duration_s is not None:
            detail["duration_s"] = duration_s
        duration = "-1" if duration_s is None else repr(duration_s)
        changed = await self._store.change(self, "force", (duration,), actor=actor, detail=detail)
        if changed is None:
            return super().force_open(actor=actor, duration_s=duration_s, note=note)
        return changed

    # -- the view ----------------------------------------------------------------------------

    def apply(self, view: SharedView, at: float) -> None:
        """Take the shared state reported at local time `at` as this process's view."""
        self.adopt(view, at)
        if not self._first_generation:
            self._first_generation = view.generation

    def hear(self, view: SharedView, at: float) -> bool:
        """Apply a view heard from Redis if it is newer than this one; returns whether it was.
        A view of the same generation that is not closed is newer (a wait or probes moved)."""
        generation = self.generation
        if view.generation > generation or (
            view.generation == generation and view.state is not _CLOSED
        ):
            self.apply(view, at)
            return True
        return False
