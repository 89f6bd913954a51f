"""One attempt at one target: admission, the call, classification, and exactly one verdict.

Every attempt is one call on the (tenant, provider) breaker. The verdict is
given exactly once: success, a classified failure, or a neutral release when
the caller went away or our own deadline cut the call short (neither says
anything about the provider's health). A failure before the request left this
process is the caller's (`resilience.providers.sending`): a request-scoped
bad_request with `sent=False`, neutral for the breaker.

The call runs under the deadline's `Cutoff` (`resilience.client.cutoff`: the rules of
`asyncio.timeout`, on one loop timer for every attempt). Given the target's
`MemberHealth`, the attempt is recorded there as well, in the same coroutine: every
attempt of the client's walk goes through here, so it pays for one frame, not two.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from resilience.breaker.machine import ASK_STORE, CircuitBreaker, Permit
from resilience.classify import classify
from resilience.client.cutoff import Cutoff
from resilience.deadline import Deadline
from resilience.errors import ProviderError, ResilienceError
from resilience.providers.sending import Dispatch
from resilience.routing.health import MemberHealth

T = TypeVar("T")


class DeadlineExceeded(ResilienceError):
    """The request's deadline ran out during an attempt; the attempt was abandoned."""


async def attempt(
    call: Callable[..., Awaitable[T]],
    *args: object,
    breaker: CircuitBreaker,
    deadline: Deadline,
    number: int,
    settle: bool = True,
    health: MemberHealth | None = None,
) -> tuple[T, Permit]:
    """Run `call(*args)` under the breaker and the deadline; raise `ProviderError` on failure.

    `call` is called only once the breaker has admitted the attempt. With `settle=False`
    a success is not recorded: the caller holds the permit and settles it later (a
    stream holds it until its end). With `health`, the attempt is in flight there from
    the start; a success records its latency, a failure that was sent or that the
    breaker counts records its verdict, and anything else (refused, cut by the deadline,
    cancelled, never sent) only ends it.
    Raises `CircuitOpenError` (nothing was called), `ProviderError`, `DeadlineExceeded`
    or `asyncio.CancelledError`.
    """
    started = health.started() if health is not None else 0.0
    try:
        remaining = deadline.remaining()
        if remaining <= 0:
            raise DeadlineExceeded(
                "deadline exceeded",
                tenant=breaker.tenant,
                provider=breaker.provider,
                attempt=number,
            )
        permit = breaker.acquire()
        if permit is ASK_STORE:
            permit = await breaker.admit()
        try:
            with Dispatch() as sending, Cutoff(remaining) as cut:
                value = await call(*args)
        except asyncio.CancelledError:
            breaker.release(permit)
            raise
        except Exception as exc:
            if cut.expired:
                breaker.release(permit)
                raise DeadlineExceeded(
                    "deadline exceeded",
                    tenant=breaker.tenant,
                    provider=breaker.provider,
                    attempt=number,
                ) from exc
            raise failure(breaker, permit, exc, number=number, sent=sending.left) from exc
        if settle:
            breaker.record_success(permit)
    except ProviderError as exc:
        if health is not None:
            counts = exc.kind.policy.counts_on_breaker
            if exc.sent or counts:
                health.failed(started, counts=counts)
            else:  # never left: the upstream's figures are not about it
                health.abandoned()
        raise
    except BaseException:
        if health is not None:
            health.abandoned()
        raise
    if health is not None:
        health.succeeded(started)
    return value, permit


def failure(
    breaker: CircuitBreaker,
    permit: Permit,
    exc: BaseException,
    *,
    number: int,
    stream_started: bool = False,
    sent: bool = True,
) -> ProviderError:
    """Classify `exc`, give the breaker its verdict, and build the error to raise."""
    found = classify(exc, stream_started=stream_started, sent=sent)
    breaker.record_failure(permit, found.kind, retry_after_s=found.retry_after_s)
    return ProviderError(
        found.message,
        kind=found.kind,
        status_code=found.status_code,
        retry_after_s=found.retry_after_s,
        code=found.code,
        tenant=breaker.tenant,
        provider=breaker.provider,
        attempt=number,
        sent=found.sent,
    )
