"""Each breaker library behind one interface, used the way its docs show (bench/concurrency.py).

`guard.call(fn)` runs the async upstream call `fn` under the library's breaker: it raises
`Refused` when the breaker turns the call away, re-raises the upstream's failure otherwise.
Every state change the library reports (listener, hook or audit sink) is counted in
`events`; for circuitbreaker, which has no event API, each time it (re)stamps its open
time is counted instead.
"""

from __future__ import annotations

import contextlib
import datetime
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

import aiobreaker
import circuitbreaker
import purgatory
import pybreaker
from purgatory.domain.model import OpenedState

from resilience import BreakerPolicy, BreakerRegistry, CircuitOpenError, ErrorKind
from resilience.breaker.events import BreakerTransition

Upstream = Callable[[], Awaitable[None]]
THRESHOLD = 5


class Refused(Exception):
    """The breaker turned the call away without calling the upstream."""


class Guard(Protocol):
    @property
    def events(self) -> int: ...

    async def call(self, fn: Upstream) -> None: ...


class Ours:
    """`acquire()`, the call, then exactly one verdict; transitions arrive at an audit sink."""

    def __init__(self, cooldown_s: float) -> None:
        self.events = 0
        policy = BreakerPolicy(failure_threshold=THRESHOLD, cooldown_s=cooldown_s)
        self._breaker = BreakerRegistry(policy=policy, sinks=[self]).get("t", "p")

    def emit(self, event: BreakerTransition) -> None:
        self.events += 1

    async def call(self, fn: Upstream) -> None:
        try:
            permit = self._breaker.acquire()
        except CircuitOpenError:
            raise Refused from None
        try:
            await fn()
        except Exception:
            self._breaker.record_failure(permit, ErrorKind.OVERLOADED)
            raise
        self._breaker.record_success(permit)


class _PyListener(pybreaker.CircuitBreakerListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.events = 0

    def state_change(self, cb: Any, old_state: Any, new_state: Any) -> None:
        self.events += 1


class PyBreaker:
    """pybreaker in asyncio: `with breaker.calling(): await fn()` (`call_async` needs Tornado)."""

    def __init__(self, cooldown_s: float) -> None:
        self._listener = _PyListener()
        self._breaker = pybreaker.CircuitBreaker(
            fail_max=THRESHOLD, reset_timeout=cooldown_s, listeners=[self._listener]
        )

    @property
    def events(self) -> int:
        return self._listener.events

    async def call(self, fn: Upstream) -> None:
        try:
            context = self._breaker.calling()
            context.__enter__()
        except pybreaker.CircuitBreakerError:
            raise Refused from None
        try:
            await fn()
        except Exception as exc:
            # "threshold reached" is pybreaker's way of saying this failure tripped it
            with contextlib.suppress(pybreaker.CircuitBreakerError):
                context.__exit__(type(exc), exc, exc.__traceback__)
            raise
        context.__exit__(None, None, None)


class _CountingCircuitBreaker(circuitbreaker.CircuitBreaker):  # type: ignore[misc]
    """Counts every time the breaker stamps its open time (it has no event API)."""

    opens = 0

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "_opened" and getattr(self, "_state", None) == circuitbreaker.STATE_OPEN:
            self.opens += 1
        super().__setattr__(name, value)


class CircuitBreakerLib:
    """circuitbreaker: the decorated coroutine function, as `@circuit` builds it."""

    def __init__(self, cooldown_s: float) -> None:
        self._breaker = _CountingCircuitBreaker(
            failure_threshold=THRESHOLD, recovery_timeout=cooldown_s, name=f"bench-{id(self)}"
        )

        async def run(fn: Upstream) -> None:
            await fn()

        self._guarded = self._breaker(run)

    @property
    def events(self) -> int:
        return int(self._breaker.opens)

    async def call(self, fn: Upstream) -> None:
        try:
            await self._guarded(fn)
        except circuitbreaker.CircuitBreakerError:
            raise Refused from None


class _AioListener(aiobreaker.CircuitBreakerListener):  # type: ignore[misc]
    def __init__(self) -> None:
        self.events = 0

    def state_change(self, breaker: Any, old: Any, new: Any) -> None:
        self.events += 1


class AioBreaker:
    """aiobreaker: `await breaker.call_async(fn)`."""

    def __init__(self, cooldown_s: float) -> None:
        self._listener = _AioListener()
        self._breaker = aiobreaker.CircuitBreaker(
            fail_max=THRESHOLD,
            timeout_duration=datetime.timedelta(seconds=cooldown_s),
            listeners=[self._listener],
        )

    @property
    def events(self) -> int:
        return self._listener.events

    async def call(self, fn: Upstream) -> None:
        entered = False

        async def marked() -> None:
            nonlocal entered
            entered = True
            await fn()

        try:
            await self._breaker.call_async(marked)
        except aiobreaker.CircuitBreakerError:
            if not entered:
                raise Refused from None
            raise  # "threshold reached" wraps the upstream failure that tripped it


class Purgatory:
    """purgatory: `async with await factory.get_breaker(name): await fn()`."""

    def __init__(self, cooldown_s: float) -> None:
        self.events = 0
        self._factory = purgatory.AsyncCircuitBreakerFactory(
            default_threshold=THRESHOLD, default_ttl=cooldown_s
        )
        self._factory.add_listener(self._hook)

    def _hook(self, name: str, event_name: str, event: Any) -> None:
        if event_name == "state_changed":
            self.events += 1

    async def call(self, fn: Upstream) -> None:
        try:
            breaker = await self._factory.get_breaker("t/p")
            await breaker.__aenter__()
        except OpenedState:
            raise Refused from None
        try:
            await fn()
        except Exception as exc:
            await breaker.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        await breaker.__aexit__(None, None, None)


GUARDS: dict[str, Callable[[float], Guard]] = {
    "ours": Ours,
    "pybreaker": PyBreaker,
    "circuitbreaker": CircuitBreakerLib,
    "aiobreaker": AioBreaker,
    "purgatory": Purgatory,
}
