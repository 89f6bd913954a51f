"""The breaker's reference model, which the stores are checked against: `Model` for one
breaker, `ProviderModel` for every tenant's breaker of one provider and its provider-wide
gate (docs/architecture.md, "Breaker rules")."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import strategies as st

from resilience import BreakerPolicy, ErrorKind
from resilience.breaker.machine import CircuitBreaker
from resilience.errors import Scope

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


@dataclass
class ModelPermit:
    generation: int
    probe: int | None  # probe id, None for an ordinary call


@dataclass
class Model:
    """The state machine of docs/architecture.md, "Breaker rules", written plainly."""

    now: float
    policy: BreakerPolicy = POLICY
    state: str = "closed"
    generation: int = 0
    calls: list[tuple[float, bool]] = field(default_factory=list)
    ladder: float = field(init=False)
    retry_at: float = 0.0
    probes: dict[int, float] = field(default_factory=dict)
    next_probe: int = 0
    events: int = 0
    on_move: Callable[[str], None] | None = None
    """Told the new state at every real move (`ProviderModel` follows its gate's)."""

    def __post_init__(self) -> None:
        self.ladder = self.policy.cooldown_s

    def visible_state(self) -> str:
        if self.state in ("open", "forced_open") and self.now >= self.retry_at:
            return "half_open"
        return self.state

    def wait(self) -> float:
        """Seconds until a call could be admitted, as the breaker reports it."""
        if self.state == "closed":
            return 0.0
        if self.state == "half_open":
            if len(self.probes) < self.policy.half_open_max_calls:
                return 0.0
            watchdog = min(self.probes.values()) + self.policy.probe_timeout_s - self.now
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
        if self.on_move is not None:
            self.on_move(to)

    def window(self) -> tuple[int, int]:
        width = self.policy.window_s / 10
        current = math.floor(self.now / width)
        inside = [failed for t, failed in self.calls if math.floor(t / width) > current - 10]
        return len(inside), sum(inside)

    def admit(self) -> ModelPermit | None:
        if self.state == "closed":
            return ModelPermit(self.generation, None)
        if self.state != "half_open":
            if self.now < self.retry_at:
                return None
            self.move("half_open")
        if len(self.probes) >= self.policy.half_open_max_calls:
            self.probes = {
                p: t for p, t in self.probes.items() if self.now - t < self.policy.probe_timeout_s
            }
            if len(self.probes) >= self.policy.half_open_max_calls:
                return None
        self.next_probe += 1
        self.probes[self.next_probe] = self.now
        return ModelPermit(self.generation, self.next_probe)

    def open(self, cooldown: float) -> None:
        self.retry_at = self.now + cooldown
        self.move("open")

    def settle(
        self,
        permit: ModelPermit,
        kind: ErrorKind | None,
        retry_after: float | None,
        counted: Callable[[], None] | None = None,
    ) -> str | None:
        """The verdict of a call: "ok" for a success that counts (not late), "tripped" for a
        failure that opened the breaker by the threshold, else None. `counted` hears of
        each counted failure of an ordinary call, before it may open the breaker."""
        policy = self.policy
        if kind is not None and not kind.policy.counts_on_breaker:
            self.release(permit)
            return None
        if permit.generation != self.generation:
            return None  # late
        if permit.probe is None:
            self.calls.append((self.now, kind is not None))
            if kind is None:
                return "ok"
            if counted is not None:
                counted()
            if kind is ErrorKind.RATE_LIMITED:
                self.open(
                    min(retry_after, policy.max_cooldown_s)
                    if retry_after is not None
                    else self.ladder
                )
                return None
            calls, fails = self.window()
            if fails >= policy.failure_threshold and fails >= policy.failure_rate * calls:
                self.open(self.ladder)
                return "tripped"
            return None
        if permit.probe not in self.probes:
            return None  # reclaimed by the watchdog
        del self.probes[permit.probe]
        if kind is None:
            self.calls.clear()
            self.ladder = policy.cooldown_s
            self.move("closed")
            return "ok"
        if kind is ErrorKind.RATE_LIMITED:
            self.open(
                min(retry_after, policy.max_cooldown_s) if retry_after is not None else self.ladder
            )
        else:
            self.ladder = min(self.ladder * 2, policy.max_cooldown_s)
            self.open(self.ladder)
        return None

    def release(self, permit: ModelPermit) -> None:
        if permit.probe is not None:
            self.probes.pop(permit.probe, None)

    def reset(self) -> None:
        self.calls.clear()
        self.ladder = self.policy.cooldown_s
        self.move("closed")

    def force_open(self, duration: float | None) -> None:
        self.retry_at = math.inf if duration is None else self.now + duration
        if self.state == "forced_open":
            return
        self.move("forced_open")


@dataclass
class ProviderPermit:
    tenant: str
    own: ModelPermit
    gate: ModelPermit | None
    """The gate's probe, when this call is also it."""


Refusal = tuple[str, float, bool]
"""A refused call: the refusing breaker's state, its wait, whether it is the gate."""


class ProviderModel:
    """Every tenant's breaker of one provider and its provider-wide gate (tenant `*`),
    written plainly: a call needs both; the gate opens by trips (tenants' breakers opened on
    provider errors within the window) or by the streak (provider-scoped failures that stay
    at least `failure_rate` of the provider's outcomes since the streak began)."""

    def __init__(self, now: float, policy: BreakerPolicy) -> None:
        self.policy = policy
        self.log: list[tuple[str, str]] = []
        """Every move: (tenant, new state)."""
        self.gate = Model(now=now, policy=policy, on_move=self._gate_moved)
        self.tenants: dict[str, Model] = {}
        self.trips: dict[str, float] = {}
        self.streak = 0
        """Provider-scoped failures of the streak under way; 0: none."""
        self.streak_successes = 0
        self.streak_tenants: set[str] = set()

    @property
    def now(self) -> float:
        return self.gate.now

    def advance(self, seconds: float) -> None:
        for model in (self.gate, *self.tenants.values()):
            model.now += seconds

    def set_now(self, now: float) -> None:
        for model in (self.gate, *self.tenants.values()):
            model.now = now

    def breaker(self, tenant: str) -> Model:
        if tenant == "*":
            return self.gate
        model = self.tenants.get(tenant)
        if model is None:

            def moved(to: str) -> None:
                self.log.append((tenant, to))

            model = self.tenants[tenant] = Model(now=self.now, policy=self.policy, on_move=moved)
        return model

    def wait(self, tenant: str) -> float:
        """`retry_after()`: a tenant's breaker waits for its gate too."""
        own = self.breaker(tenant).wait()
        return own if tenant == "*" else max(own, self.gate.wait())

    # -- calls ---------------------------------------------------------------------------------

    def admit(self, tenant: str) -> tuple[ProviderPermit | None, Refusal | None]:
        """The tenant's own breaker decides first (and may move to half-open), then the gate."""
        own_model = self.breaker(tenant)
        own = own_model.admit()
        if own is None:
            return None, (own_model.state, own_model.wait(), tenant == "*")
        gate = self.gate.admit()
        if gate is None:
            own_model.release(own)
            return None, (self.gate.state, self.gate.wait(), True)
        return ProviderPermit(tenant, own, gate if gate.probe is not None else None), None

    def settle(
        self, permit: ProviderPermit, kind: ErrorKind | None, retry_after: float | None
    ) -> None:
        if kind is not None and not kind.policy.counts_on_breaker:
            self.release(permit)
            return
        provider = kind is not None and kind.policy.scope is Scope.PROVIDER
        if permit.gate is not None:
            if kind is None or provider:
                self.gate.settle(permit.gate, kind, retry_after)
            else:
                self.gate.release(permit.gate)  # not the provider's fault: no verdict on it
        tenant = permit.tenant

        def counted() -> None:
            if provider:
                self.extend_streak(tenant)

        outcome = self.breaker(tenant).settle(permit.own, kind, retry_after, counted)
        if outcome == "ok":
            self.answered()
        elif outcome == "tripped" and provider:
            self.tripped(tenant)

    def release(self, permit: ProviderPermit) -> None:
        if permit.gate is not None:
            self.gate.release(permit.gate)
        self.breaker(permit.tenant).release(permit.own)

    # -- the gate's rules ----------------------------------------------------------------------

    def extend_streak(self, tenant: str) -> None:
        if self.streak == 0:
            self.streak_successes = 0
            self.streak_tenants = set()
        self.streak += 1
        self.streak_tenants.add(tenant)
        policy = self.policy
        if (
            policy.provider_wide_streak
            and policy.provider_wide_min_tenants
            and self.streak >= policy.provider_wide_streak
            and len(self.streak_tenants) >= policy.provider_wide_min_tenants
            and self.gate.state == "closed"
        ):
            self.open_gate()

    def answered(self) -> None:
        """A success during a streak ends it only once its failures fall below
        `failure_rate` of its outcomes: stragglers come back among the first failures."""
        if not self.streak:
            return
        self.streak_successes += 1
        if self.streak < self.policy.failure_rate * (self.streak + self.streak_successes):
            self.streak = 0

    def tripped(self, tenant: str) -> None:
        policy = self.policy
        if not policy.provider_wide_min_tenants:
            return
        self.trips[tenant] = self.now
        self.trips = {t: at for t, at in self.trips.items() if at >= self.now - policy.window_s}
        if len(self.trips) >= policy.provider_wide_min_tenants and self.gate.state == "closed":
            self.open_gate()

    def open_gate(self) -> None:
        self.gate.ladder = self.policy.cooldown_s
        self.gate.open(self.policy.cooldown_s)

    def _gate_moved(self, to: str) -> None:
        self.log.append(("*", to))
        self.streak = 0  # the streak starts over at each move of the gate
        if to == "open":
            self.trips.clear()

    def streak_counts(self) -> tuple[int, int]:
        """(failures, successes since it began) of the streak under way; (0, 0) if none."""
        return (self.streak, self.streak_successes) if self.streak else (0, 0)

    # -- admin ---------------------------------------------------------------------------------

    def reset(self, tenant: str) -> None:
        self.breaker(tenant).reset()

    def force_open(self, tenant: str, duration: float | None) -> None:
        self.breaker(tenant).force_open(duration)


def streak_of(gate: CircuitBreaker) -> tuple[int, int]:
    """A memory store's gate's streak as `ProviderModel.streak_counts()` shows it."""
    detail = gate._streak_detail
    if not gate._streak or detail is None:
        return 0, 0
    return gate._streak, detail.successes


KINDS = st.sampled_from(
    [
        ErrorKind.SERVER_ERROR,
        ErrorKind.TIMEOUT,
        ErrorKind.RATE_LIMITED,
        ErrorKind.BAD_REQUEST,
        ErrorKind.AUTH,
    ]
)
