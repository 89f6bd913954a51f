"""The breaker's reference model, which the stores are checked against."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hypothesis import strategies as st

from resilience import BreakerPolicy, ErrorKind

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


WIDTH = POLICY.window_s / 10
