"""Error taxonomy: what went wrong with a provider call, and what to do about it.

`ErrorKind` names the failure; `ErrorKind.policy` says whether to retry the same
target, whether it counts on the (tenant, provider) breaker, whom it concerns
(the provider, the tenant, or only this request) and whether a fallback target
may be tried. Nothing else in the package decides these questions.

Every exception the package raises is defined here too, so this module imports
nothing else of the package at run time (`resilience.errors` re-exports them):

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

Which kind a vendor exception is: `resilience.classify`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from resilience.breaker.events import BreakerState
    from resilience.client.outcomes import TargetOutcome
    from resilience.types import ProviderName, TenantId


class ErrorKind(enum.StrEnum):
    TIMEOUT = "timeout"
    NETWORK = "network"
    OVERLOADED = "overloaded"
    SERVER_ERROR = "server_error"
    RATE_LIMITED = "rate_limited"
    AUTH = "auth"
    INVALID_RESPONSE = "invalid_response"
    CONTEXT_LENGTH = "context_length"
    CONTENT_FILTER = "content_filter"
    BAD_REQUEST = "bad_request"
    STREAM_INTERRUPTED = "stream_interrupted"
    CANCELLED = "cancelled"

    @property
    def policy(self) -> ErrorPolicy:
        return POLICIES[self]


class Scope(enum.StrEnum):
    """Whom a failure says something about."""

    PROVIDER = "provider"
    TENANT = "tenant"
    REQUEST = "request"
    NONE = "none"


@dataclass(frozen=True, slots=True)
class ErrorPolicy:
    retryable: bool
    """Retry the same target (rate limits: only as the last resort, after Retry-After)."""
    counts_on_breaker: bool
    scope: Scope
    fallback: bool
    """Another target of the route may take the call."""


POLICIES: Mapping[ErrorKind, ErrorPolicy] = MappingProxyType(
    {
        ErrorKind.TIMEOUT: ErrorPolicy(True, True, Scope.PROVIDER, True),
        ErrorKind.NETWORK: ErrorPolicy(True, True, Scope.PROVIDER, True),
        ErrorKind.OVERLOADED: ErrorPolicy(True, True, Scope.PROVIDER, True),
        ErrorKind.SERVER_ERROR: ErrorPolicy(True, True, Scope.PROVIDER, True),
        ErrorKind.RATE_LIMITED: ErrorPolicy(False, True, Scope.TENANT, True),
        ErrorKind.AUTH: ErrorPolicy(False, True, Scope.TENANT, True),
        ErrorKind.INVALID_RESPONSE: ErrorPolicy(True, True, Scope.PROVIDER, True),
        ErrorKind.CONTEXT_LENGTH: ErrorPolicy(False, False, Scope.REQUEST, True),
        ErrorKind.CONTENT_FILTER: ErrorPolicy(False, False, Scope.REQUEST, False),
        ErrorKind.BAD_REQUEST: ErrorPolicy(False, False, Scope.REQUEST, False),
        ErrorKind.STREAM_INTERRUPTED: ErrorPolicy(False, True, Scope.PROVIDER, False),
        ErrorKind.CANCELLED: ErrorPolicy(False, False, Scope.NONE, False),
    }
)


@dataclass(frozen=True, slots=True)
class Classification:
    """What `classify()` found: the kind, and the typed facts retries and the audit need."""

    kind: ErrorKind
    status_code: int | None = None
    """The HTTP error status (>= 400); None for transport faults and mid-stream error events."""
    retry_after_s: float | None = None
    """From `retry-after-ms` / `Retry-After`, on rate_limited and overloaded only."""
    code: str | None = None
    """The provider's own error code or type, e.g. `overloaded_error`, `context_length_exceeded`."""
    message: str = ""
    """Short and safe to log: credentials from the request are redacted, headers never shown."""
    underlying: ErrorKind | None = None
    """For stream_interrupted: the kind the fault would have had before output began."""
    sent: bool = True
    """False when the request never left this process (see `classify()`)."""

    @property
    def policy(self) -> ErrorPolicy:
        return self.kind.policy


NOT_SENT = "not_sent"
"""`Classification.code` of a failure before the request left: the caller's bad_request."""


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


class TenantLookupFailed(ResilienceError):
    """The tenant lookup (`TenantLookup.policy_for`: the app's own table, say) raised, so the
    tenant's policy is unknown and no call is made; the lookup's error is the `__cause__`.
    Answered 503 `tenant_lookup_failed`, as `TenantMiddleware` answers a failed key lookup."""

    def __init__(self, tenant: TenantId) -> None:
        super().__init__(f"the tenant lookup failed for tenant {tenant!r}", tenant=tenant)


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
            f"{o.target}: {o.status}"
            + (f" ({o.kind})" if o.kind else "")
            + (f" ({o.message})" if o.status == "cannot_carry" else "")
            for o in outcomes
        )
        super().__init__(f"all targets of route {route!r} failed: {parts}", tenant=tenant)
        self.route = route
        self.outcomes = tuple(outcomes)
        self.retry_after_s = retry_after_s
        """Seconds until the soonest target may be tried again; None when unknown."""


class ResponseTooLarge(Exception):
    """The upstream's answer passed the provider's `max_response_bytes` (see
    `resilience.providers.limits`); classified `invalid_response`, whatever wraps it."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the upstream's answer is larger than {limit} bytes")
        self.limit = limit
