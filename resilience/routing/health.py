"""Health of each (provider, model): latency, error rate and calls in flight.

The client records every attempt here. `least_latency` and `least_busy` groups read it to
order their members; the admin API (`GET /admin/providers`), `/metrics` and the dashboard
show it. Health is about the upstream, so it is shared by all tenants.

- `ewma_s`: exponentially weighted mean of recent latencies (weight `EWMA_WEIGHT` for
  the newest). A success adds its latency. A failure the breaker counts adds
  `max(latency, 2 * ewma_s)`: a member that fails fast must not look fast.
- `p50_ms`, `p99_ms`: over the last `SAMPLES` successful attempts.
- `error_rate`: failed / finished attempts over the last `SAMPLES` finished attempts,
  however old (a count over attempts costs less per call than a time window, and an idle
  target keeps the figures it had). Neutral endings (the caller cancelled, our deadline
  cut the call) count neither way.
- `in_flight`: attempts started and not yet finished; for a stream, until its first chunk.

Targets named by callers (`provider:model` straight from a request) are unbounded, so the
board is too: past `max_targets` the least recently used entry goes (a gauge, so nothing
accumulated is lost that the next call does not rebuild). Targets a balancer reads are
pinned and never go. `Target` refuses names no encoder takes (a lone surrogate) and
long ones, but the board does not rely on it: `/metrics` and the admin API render every
entry it holds, so each shows its names escaped (`\\udc80`) and shortened as needed.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict, deque
from dataclasses import dataclass

from resilience.routing.routes import Target
from resilience.types import Clock, ProviderName

EWMA_WEIGHT = 0.3
SAMPLES = 256
MAX_TARGETS = 1000
"""Entries the board keeps besides pinned ones; the least recently used goes first."""
MAX_LABEL = 256
"""Longer names (none a `Target` accepts) are shown shortened, a digest keeping them apart."""


@dataclass(frozen=True, slots=True)
class HealthSnapshot:
    """One (provider, model)'s figures at one moment; what the admin API returns."""

    provider: ProviderName
    model: str
    in_flight: int
    calls: int
    """Attempts finished, successful or not, among the last `SAMPLES`."""
    errors: int
    error_rate: float
    ewma_ms: float | None
    p50_ms: float | None
    p99_ms: float | None
    calls_total: int
    errors_total: int

    def as_dict(self) -> dict[str, object]:
        return {
            "provider": self.provider,
            "model": self.model,
            "in_flight": self.in_flight,
            "calls": self.calls,
            "errors": self.errors,
            "error_rate": self.error_rate,
            "ewma_ms": self.ewma_ms,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "calls_total": self.calls_total,
            "errors_total": self.errors_total,
        }


class MemberHealth:
    """Running figures of one target. Mutated only from the event loop's thread."""

    __slots__ = (
        "_clock",
        "_latencies",
        "_recent",
        "_recent_errors",
        "calls_total",
        "errors_total",
        "ewma_s",
        "in_flight",
        "model",
        "provider",
        "target",
    )

    def __init__(self, target: Target, *, clock: Clock) -> None:
        self.target = target
        self.provider = printable(target.provider)
        self.model = printable(target.model)
        """The names as shown: what every encoder takes."""
        self._clock = clock
        self.in_flight = 0
        self.ewma_s: float | None = None
        self.calls_total = 0
        self.errors_total = 0
        self._latencies: deque[float] = deque(maxlen=SAMPLES)
        self._recent: deque[bool] = deque(maxlen=SAMPLES)
        """Whether each of the last finished attempts failed."""
        self._recent_errors = 0

    def started(self) -> float:
        """Count a call in flight; returns its start time for `succeeded` / `failed`."""
        self.in_flight += 1
        return self._clock()

    def succeeded(self, started: float) -> None:
        latency = self._clock() - started
        self.in_flight -= 1
        self._latencies.append(latency)
        self._blend(latency)
        self._finish(failed=False)

    def failed(self, started: float, *, counts: bool) -> None:
        """A failed attempt; `counts` when the provider is to blame (the breaker's verdict)."""
        latency = self._clock() - started
        self.in_flight -= 1
        if counts:
            self._blend(max(latency, 2.0 * (self.ewma_s or 0.0)))
            self.errors_total += 1
        self._finish(failed=counts)

    def abandoned(self) -> None:
        """Cancelled or cut by our deadline: no verdict on the upstream."""
        self.in_flight -= 1

    def snapshot(self) -> HealthSnapshot:
        finished, errors = len(self._recent), self._recent_errors
        ordered = sorted(self._latencies)
        return HealthSnapshot(
            provider=self.provider,
            model=self.model,
            in_flight=self.in_flight,
            calls=finished,
            errors=errors,
            error_rate=errors / finished if finished else 0.0,
            ewma_ms=self.ewma_s * 1000.0 if self.ewma_s is not None else None,
            p50_ms=_percentile(ordered, 0.50),
            p99_ms=_percentile(ordered, 0.99),
            calls_total=self.calls_total,
            errors_total=self.errors_total,
        )

    def _finish(self, *, failed: bool) -> None:
        self.calls_total += 1
        recent = self._recent
        if len(recent) == SAMPLES and recent[0]:
            self._recent_errors -= 1  # about to fall out of the deque
        recent.append(failed)
        if failed:
            self._recent_errors += 1

    def _blend(self, sample: float) -> None:
        ewma = self.ewma_s
        self.ewma_s = sample if ewma is None else ewma + EWMA_WEIGHT * (sample - ewma)


class HealthBoard:
    """`MemberHealth` by target, created on first use, bounded by `max_targets`.

    Mutated only from the event loop's thread.
    """

    def __init__(self, *, clock: Clock = time.monotonic, max_targets: int = MAX_TARGETS) -> None:
        if max_targets < 1:
            raise ValueError(f"max_targets: must be >= 1, got {max_targets!r}")
        self._clock = clock
        self.max_targets = max_targets
        self._members: OrderedDict[Target, MemberHealth] = OrderedDict()
        """Least recently used first."""
        self._pinned: dict[Target, MemberHealth] = {}

    def member(self, target: Target) -> MemberHealth:
        """The target's entry, made the most recently used; created (maybe evicting) if new."""
        found = self._pinned.get(target)
        if found is not None:
            return found
        members = self._members
        found = members.get(target)
        if found is not None:
            members.move_to_end(target)
            return found
        found = members[target] = MemberHealth(target, clock=self._clock)
        if len(members) > self.max_targets:
            members.popitem(last=False)  # a call still holding it finishes on the old entry
        return found

    def pin(self, target: Target) -> MemberHealth:
        """The entry of a target a balancer orders by: never evicted, so the balancer and
        the client keep reading and writing the same one."""
        found = self._pinned.get(target)
        if found is None:
            found = self._members.pop(target, None) or MemberHealth(target, clock=self._clock)
            self._pinned[target] = found
        return found

    def snapshot(self) -> list[HealthSnapshot]:
        """Every target held, sorted by (provider, model)."""
        snaps = [m.snapshot() for m in (*self._pinned.values(), *self._members.values())]
        snaps.sort(key=lambda s: (s.provider, s.model))
        return snaps

    def __len__(self) -> int:
        return len(self._pinned) + len(self._members)


def utf8_safe(text: str) -> str:
    """`text` itself when UTF-8 can carry it; else with lone surrogates escaped (`\\udc80`)."""
    try:
        text.encode()
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode()
    return text


def printable(name: str) -> str:
    """`name` itself when UTF-8 takes it and it is short; else escaped (`\\udc80`) and
    shortened, a digest of the whole keeping different names apart."""
    name = utf8_safe(name)
    if len(name) > MAX_LABEL:
        digest = hashlib.blake2b(name.encode(), digest_size=6).hexdigest()
        name = f"{name[: MAX_LABEL - 15]}...{digest}"
    return name


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile of sorted seconds, in milliseconds."""
    if not ordered:
        return None
    rank = max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))
    return ordered[rank] * 1000.0
