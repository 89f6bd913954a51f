"""`exception_handlers(...)`: the library's errors as the gateway answers them, for any app.

Without them a Starlette or FastAPI app answers `AllTargetsFailed` with a bare 500, and a
client cannot tell an outage (wait Retry-After) from a bug. With them:
`FastAPI(exception_handlers=exception_handlers(client))` (or Starlette's
`exception_handlers=`) answers every error the walk raises with the gateway's status,
headers (`Retry-After`, `x-should-retry: false` once the walk is spent, the request id
`TenantMiddleware` sets) and body (`resilience.embed.failures`): 503
`all_targets_failed`, 503 `circuit_open`, the upstream's 4xx for the caller's own errors,
502 for other upstream failures, 404/400 for a route name the client gave, and 401
`missing_tenant` when no tenant is set. OpenAI's error format, or Anthropic's on the
paths where the gateway answers in it (`error_format_for`).

Given the client, a tenant held back only by its own requests-per-minute limit gets 429
`rate_limit_exceeded` with that limit's Retry-After, as from the gateway; a tenant held
back only by its own concurrency cap gets 429 `concurrency_limit_exceeded` either way.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from resilience.client.resilient import ResilientClient
from resilience.embed.deferred import deferred_client
from resilience.embed.failures import (
    error_format_for,
    failure_of,
    own_concurrency_limit,
    own_rate_limit,
    render,
)
from resilience.errors import (
    AllTargetsFailed,
    CircuitOpenError,
    InvalidRequestError,
    NoTenantError,
    ProviderError,
    TenantLookupFailed,
    UnknownRouteError,
)
from resilience.tenancy.context import current_request_id
from resilience.tenancy.middleware import ANTHROPIC_ERRORS
from resilience.tenancy.resolvers import TenantRejected

Handler = Callable[[Request, Any], Coroutine[Any, Any, Response]]
Handlers = dict[int | type[Exception], Handler]
"""The mapping FastAPI's `exception_handlers=` is typed as; Starlette's takes it too."""

HANDLED: tuple[type[Exception], ...] = (
    AllTargetsFailed,
    CircuitOpenError,
    ProviderError,
    UnknownRouteError,
    InvalidRequestError,
    NoTenantError,
    TenantLookupFailed,
    TenantRejected,
)
"""What the handlers answer; subclasses too (Starlette looks handlers up along the MRO)."""


def exception_handlers(
    client: ResilientClient | Callable[[], ResilientClient] | None = None,
) -> Handlers:
    """The handlers for `HANDLED`; see the module docstring. `client` may be a callable
    (`lambda: app.state.client`) for a client the lifespan builds."""
    get_client = None if client is None else deferred_client(client)

    async def answer(request: Request, exc: Exception) -> Response:
        failure = None
        if isinstance(exc, AllTargetsFailed):
            if get_client is not None:
                failure = own_rate_limit(get_client(), exc)
            failure = failure or own_concurrency_limit(exc)
        form = error_format_for(request.url.path, request.headers)
        return render(
            failure or failure_of(exc),
            anthropic=form is ANTHROPIC_ERRORS,
            request_id=current_request_id(),
        )

    return dict.fromkeys(HANDLED, answer)
