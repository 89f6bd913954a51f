"""One attempt at one target: admission, the call, classification, and exactly one verdict.

Every attempt is one call on the (tenant, provider) breaker. The verdict is
given exactly once: success, a classified failure, or a neutral release when
the caller went away or our own deadline cut the call short (neither says
anything about the provider's health). A failure before the request left this
process is the caller's (`resilience.providers.sending`): a request-scoped
bad_request with `sent=False`, neutral for the breaker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from resilience.breaker.machine import ASK_STORE, CircuitBreaker, Permit
from resilience.classify import classify
from resilience.deadline import Deadline
from resilience.errors import ProviderError, ResilienceError
from resilience.providers.sending import dispatch

T = TypeVar("T")


class DeadlineExceeded(ResilienceError):
    """The request's deadline ran out during an attempt; the attempt was abandoned."""


async def attempt(
    call: Callable[[], Awaitable[T]],
    *,
    breaker: CircuitBreaker,
    deadline: Deadline,
    number: int,
    settle: bool = True,
) -> tuple[T, Permit]:
    """Run `call` under the breaker and the deadline; raise `ProviderError` on failure.

    With `settle=False` a success is not recorded: the caller holds the permit
    and settles it later (a stream holds it until its end).
    Raises `CircuitOpenError` (nothing was called), `ProviderError`, `DeadlineExceeded`
    or `asyncio.CancelledError`.
    """
    tenant, provider = breaker.tenant, breaker.provider
    remaining = deadline.remaining()
    if remaining <= 0:
        raise DeadlineExceeded(
            "deadline exceeded", tenant=tenant, provider=provider, attempt=number
        )
    permit = breaker.acquire()
    if permit is ASK_STORE:
        permit = await breaker.admit()
    try:
        with dispatch() as sending:
            async with asyncio.timeout(remaining) as scope:
                value = await call()
    except asyncio.CancelledError:
        breaker.release(permit)
        raise
    except Exception as exc:
        if scope.expired():
            breaker.release(permit)
            raise DeadlineExceeded(
                "deadline exceeded", tenant=tenant, provider=provider, attempt=number
            ) from exc
        raise failure(breaker, permit, exc, number=number, sent=sending.left) from exc
    if settle:
        breaker.record_success(permit)
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
