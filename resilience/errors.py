"""Error taxonomy: what went wrong with a provider call, and what to do about it.

`ErrorKind` names the failure; `ErrorKind.policy` says whether to retry the same
target, whether it counts on the (tenant, provider) breaker, whom it concerns
(the provider, the tenant, or only this request) and whether a fallback target
may be tried. The table is DESIGN.md's, and nothing else in the package decides
these questions.

`classify()` (below) is the one place that maps vendor exceptions to a kind.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType


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
