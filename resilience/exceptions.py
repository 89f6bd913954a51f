"""The exceptions this package raises. Vendor exceptions never escape un-translated.

    ResilienceError               tenant, provider, attempt (None where they do not apply)
    ├── NoTenantError             current_tenant() outside a request or tenant_scope()
    ├── CircuitOpenError          the breaker refused the call; .retry_after_s says when
    ├── ProviderError             a classified provider failure: .kind, .status_code,
    │                             .retry_after_s, .sent (False: the request never left,
    │                             the caller's bad_request); __cause__ is the SDK's exception
    ├── StreamTruncatedError      a stream ended cleanly but without its end marker
    │                             (`message_stop` / `[DONE]`): raised by adapters, classified
    │                             invalid_response (stream_interrupted once output began)
    ├── UnknownRouteError         the route name is neither a route nor `provider:model`
    ├── InvalidRequestError       the caller's request cannot be sent as it is (a model
    │                             name no provider could have, a value JSON cannot carry);
    │                             .field names the place; nothing was called or created
    └── AllTargetsFailed          every target of the route failed or was skipped; .outcomes
                                  per target, .retry_after_s = the soonest breaker reopening

`resilience.errors.classify()` produces the classification a ProviderError carries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from resilience.errors import ErrorKind
from resilience.events import BreakerState
from resilience.types import ProviderName, TenantId

if TYPE_CHECKING:
    from resilience.outcomes import TargetOutcome


class ResilienceError(Exception):
    """Base of every error raised by this package."""

    def __init__(
        self,
        message: str,
        *,
        tenant: TenantId | None = None,
        provider: ProviderName | None = None,
        attempt: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.tenant = tenant
        self.provider = provider
        self.attempt = attempt


class NoTenantError(ResilienceError, LookupError):
    """No tenant is set: the code runs outside a request and outside `tenant_scope()`."""


class CircuitOpenError(ResilienceError):
    """The (tenant, provider) breaker, or the provider-wide one, refused the call."""

    def __init__(
        self,
        *,
        tenant: TenantId,
        provider: ProviderName,
        state: BreakerState,
        retry_after_s: float,
        provider_wide: bool = False,
    ) -> None:
        scope = "provider-wide breaker" if provider_wide else "breaker"
        super().__init__(
            f"{scope} for {tenant}/{provider} is {state}; retry in {retry_after_s:.1f}s",
            tenant=tenant,
            provider=provider,
        )
        self.state = state
        self.retry_after_s = retry_after_s
        self.provider_wide = provider_wide


class ProviderError(ResilienceError):
    """A provider call failed; `kind` decides retry, breaker and fallback."""

    def __init__(
        self,
        message: str,
        *,
        kind: ErrorKind,
        status_code: int | None = None,
        retry_after_s: float | None = None,
        code: str | None = None,
        tenant: TenantId | None = None,
        provider: ProviderName | None = None,
        attempt: int | None = None,
        sent: bool = True,
    ) -> None:
        super().__init__(message, tenant=tenant, provider=provider, attempt=attempt)
        self.kind = kind
        self.status_code = status_code
        self.retry_after_s = retry_after_s
        self.code = code
        self.sent = sent
        """False when the request never left this process: no provider saw it."""


class StreamTruncatedError(ResilienceError):
    """The upstream closed the stream without its end marker: output is incomplete."""


class UnknownRouteError(ResilienceError, LookupError):
    """The caller named a route that does not exist (nor a known `provider:model`)."""


class InvalidRequestError(ResilienceError, ValueError):
    """The caller's request cannot be sent as it is; `field` names where (e.g. `model`).

    Raised before any breaker, health figure or route is made for it. The gateway
    answers 400 `invalid_body`."""

    def __init__(self, field: str, problem: str, *, tenant: TenantId | None = None) -> None:
        super().__init__(f"{field}: {problem}", tenant=tenant)
        self.field = field


class AllTargetsFailed(ResilienceError):
    """No target of the route answered. The gateway returns 503 with `Retry-After`."""

    def __init__(
        self,
        route: str,
        outcomes: Sequence[TargetOutcome],
        *,
        tenant: TenantId | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        parts = ", ".join(
            f"{o.target}: {o.status}" + (f" ({o.kind})" if o.kind else "") for o in outcomes
        )
        super().__init__(f"all targets of route {route!r} failed: {parts}", tenant=tenant)
        self.route = route
        self.outcomes = tuple(outcomes)
        self.retry_after_s = retry_after_s
        """Seconds until the soonest target may be tried again; None when unknown."""
