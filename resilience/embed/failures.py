"""An error raised by parsing or by the client, as the HTTP answer each API gives.

One copy for the gateway (`resilience.gateway.api`) and for an application's own handlers
(`resilience.embed.handlers`), so both answer alike. `failure_of` decides the status,
OpenAI's error type and code, the field at fault and the Retry-After; `render` spells it
in the endpoint's format: OpenAI's `{"error": {"message", "type", "param", "code"}}` or
Anthropic's `{"type": "error", "error": {"type", "message"}, "request_id"}`, chosen by
path (`error_format_for`).

Statuses (docs/architecture.md, "Request path"): a body the format refuses 400
`invalid_body` naming the field in `param`; a request no target of the route can carry
(a field with no counterpart across formats) 400 `cannot_carry` naming the field; too
large 413; an unknown route 404; every target down 503 `all_targets_failed` with
Retry-After; the tenant's own requests-per-minute limit the only reason nothing was tried
429 `rate_limit_exceeded` with Retry-After; the caller's own errors keep the upstream's
4xx; other upstream failures 502; no tenant 401 `missing_tenant`, as `TenantMiddleware`
refuses.

An answer given after the route was walked (its retries and fallbacks spent) carries
`x-should-retry: false` unless `sdk_should_retry` is true: the OpenAI and Anthropic SDKs
obey it, instead of repeating the whole walk two more times.

Needs the plain install only (Starlette): an application embedding the library uses it
without the gateway extra's uvicorn or prometheus.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from resilience.client.outcomes import OutcomeStatus, TargetOutcome
from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.client.tpm import TENANT_LIMIT
from resilience.errors import (
    AllTargetsFailed,
    CircuitOpenError,
    ErrorKind,
    InvalidRequestError,
    NoTenantError,
    ProviderError,
    TenantLookupFailed,
    UnknownRouteError,
)
from resilience.formats.wire import WireError, anthropic_error, field_of, openai_error
from resilience.routing.bulkhead import Refusal
from resilience.tenancy.context import current_request_id
from resilience.tenancy.middleware import (
    ANTHROPIC_ERRORS,
    LOOKUP_FAILED,
    OPENAI_ERRORS,
    ErrorFormat,
    anthropic_error_type,
    openai_error_type,
)
from resilience.tenancy.resolvers import TenantRejected
from resilience.types import PROVIDER_WIDE, TenantId

_STATIC_SKIPS = frozenset({OutcomeStatus.LOCAL_ONLY, OutcomeStatus.CANNOT_EMBED})
"""Skips that say a target never fits this request, not that it is down or busy."""


class BodyTooLarge(Exception):
    """The request body is over `[server] max_body_bytes`."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Failure:
    """One error answer, before it is spelled in a format."""

    status: int
    message: str
    type_: str
    """OpenAI's error type; Anthropic's is chosen by status (`anthropic_error_type`)."""
    code: str | None
    param: str | None = None
    retry_after_s: int | None = None
    walked: bool = False
    """The route was walked: the gateway's own retries and fallbacks are spent."""
    headers: dict[str, str] = field(default_factory=dict)


def failure_of(exc: Exception) -> Failure:
    """The answer for an error raised by parsing or by the client; anything else re-raised."""
    if isinstance(exc, BodyTooLarge):
        return Failure(
            status=413,
            message="request body too large",
            type_="invalid_request_error",
            code="body_too_large",
        )
    if isinstance(exc, NoTenantError):
        # what TenantMiddleware answers when a request names no tenant
        return _refused(TenantRejected(401, "missing_tenant", "the request names no tenant"))
    if isinstance(exc, TenantRejected):
        return _refused(exc)
    if isinstance(exc, TenantLookupFailed):
        # what TenantMiddleware answers when the key's lookup fails: retry, not 401
        return _refused(TenantRejected(503, "tenant_lookup_failed", LOOKUP_FAILED), retry_s=1)
    if isinstance(exc, WireError):
        return _invalid(str(exc), exc.param)
    if isinstance(exc, InvalidRequestError):
        return _invalid(str(exc), exc.field)
    if isinstance(exc, UnknownRouteError):
        return Failure(
            status=404,
            message=exc.message,
            type_="invalid_request_error",
            code="model_not_found",
            param="model",
        )
    if isinstance(exc, AllTargetsFailed):
        uncarried = _uncarried(exc.outcomes)
        if uncarried is not None:
            return uncarried
        return Failure(
            status=503,
            message=exc.message,
            type_="server_error",
            code="all_targets_failed",
            retry_after_s=retry_after_header(exc.retry_after_s or 1.0),
            walked=True,
        )
    if isinstance(exc, CircuitOpenError):
        return Failure(
            status=503,
            message=exc.message,
            type_="server_error",
            code="circuit_open",
            retry_after_s=retry_after_header(exc.retry_after_s),
            walked=True,
        )
    if isinstance(exc, ProviderError) and not exc.sent and exc.kind is ErrorKind.BAD_REQUEST:
        # it never left: the caller's body could not be sent (the field is named)
        return _invalid(exc.message, field_of(exc.message))
    if isinstance(exc, ProviderError):
        status = exc.status_code if exc.status_code and 400 <= exc.status_code < 500 else 400
        if exc.kind not in (
            ErrorKind.BAD_REQUEST,
            ErrorKind.CONTENT_FILTER,
            ErrorKind.CONTEXT_LENGTH,
        ):
            status = 502
        return Failure(
            status=status,
            message=exc.message,
            type_="invalid_request_error" if status < 500 else "server_error",
            code=str(exc.kind),
            walked=True,
        )
    raise exc


def _uncarried(outcomes: Sequence[TargetOutcome]) -> Failure | None:
    """400 naming the field when no target of the route could carry the request: every
    target was skipped as one that never fits it, at least one for a field it lacks."""
    if not outcomes or any(
        o.status is not OutcomeStatus.CANNOT_CARRY and o.status not in _STATIC_SKIPS
        for o in outcomes
    ):
        return None
    reasons = [o for o in outcomes if o.status is OutcomeStatus.CANNOT_CARRY]
    if not reasons:
        return None
    first = reasons[0].message
    listed = "; ".join(f"{o.target}: {o.message}" for o in reasons)
    return Failure(
        status=400,
        message=f"no target of this route can carry the request ({listed})",
        type_="invalid_request_error",
        code="cannot_carry",
        param=field_of(first),
    )


def _refused(exc: TenantRejected, *, retry_s: int | None = None) -> Failure:
    """A tenant refusal, as `TenantMiddleware` answers it (401 asks for a bearer key)."""
    return Failure(
        status=exc.status,
        message=exc.message,
        type_=openai_error_type(exc.status),
        code=exc.code,
        retry_after_s=retry_s,
        headers={"www-authenticate": "Bearer"} if exc.status == 401 else {},
    )


def _invalid(message: str, param: str | None) -> Failure:
    return Failure(
        status=400,
        message=message,
        type_="invalid_request_error",
        code="invalid_body",
        param=param,
    )


def own_rate_limit(client: ResilientClient, exc: AllTargetsFailed) -> Failure | None:
    """429 when the tenant's own `rpm` or `tpm` is the only reason nothing was tried, else None.

    Only then: every target skipped by an rpm or tpm bucket (or one that never fits, such
    as a cloud target for a `local_only` tenant), each of them a provider the tenant has
    its own limit for, and none of them also held back by the provider's limit over all
    tenants (that is the gateway's capacity, not the tenant's share: 503 as any outage).
    """
    tenant = exc.tenant
    if tenant is None:
        return None
    limited = _own_limited(client, tenant, exc.outcomes)
    if not limited:
        return None
    waits = [o.retry_after_s for o in limited if o.retry_after_s]
    providers = sorted({o.target.provider for o in limited})
    policy = client.tenants.get(tenant) or TenantPolicy()
    tokens = {o.target.provider for o in limited if o.status is OutcomeStatus.TPM_LIMITED}
    limits = ", ".join(
        f"{p}: {policy.tpm[p]:g} tokens per minute"
        if p in tokens
        else f"{p}: {policy.rpm[p]:g} requests per minute"
        for p in providers
    )
    what = "token rate" if tokens == set(providers) else "request rate" if not tokens else "rates"
    return Failure(
        status=429,
        message=f"tenant {tenant!r} is over its own {what} ({limits}); "
        "retry after the Retry-After seconds",
        type_="rate_limit_error",
        code="rate_limit_exceeded",
        retry_after_s=retry_after_header(min(waits) if waits else 1.0),
    )


def own_concurrency_limit(exc: AllTargetsFailed) -> Failure | None:
    """429 when the tenant's own concurrency cap is the only reason nothing was tried: every
    target refused by its bulkhead at the tenant's cap (`tenant_limit`), or skipped as one
    that never fits; a provider that was full for everyone is an outage (503)."""
    outcomes = exc.outcomes
    capped = [
        o
        for o in outcomes
        if o.status is OutcomeStatus.BULKHEAD_FULL and o.message == str(Refusal.TENANT_LIMIT)
    ]
    if not capped or any(o not in capped and o.status not in _STATIC_SKIPS for o in outcomes):
        return None
    waits = [o.retry_after_s for o in capped if o.retry_after_s]
    providers = ", ".join(sorted({o.target.provider for o in capped}))
    return Failure(
        status=429,
        message=f"tenant {exc.tenant!r} has as many calls in flight as it may at {providers}; "
        "retry after the Retry-After seconds",
        type_="rate_limit_error",
        code="concurrency_limit_exceeded",
        retry_after_s=retry_after_header(min(waits) if waits else 1.0),
    )


def _own_limited(
    client: ResilientClient, tenant: TenantId, outcomes: Sequence[TargetOutcome]
) -> list[TargetOutcome]:
    limited = [o for o in outcomes if o.status in _OWN_LIMITS]
    if not limited or any(
        o.status not in _OWN_LIMITS and o.status not in _STATIC_SKIPS for o in outcomes
    ):
        return []
    policy = client.tenants.get(tenant) or TenantPolicy()
    wait = client.registry.store.token_wait_s
    for outcome in limited:
        provider = outcome.target.provider
        if outcome.status is OutcomeStatus.TPM_LIMITED:
            # the client names the bucket that refused: the tenant's own, or the provider's
            if outcome.message != TENANT_LIMIT or not policy.tpm.get(provider):
                return []
            continue
        if not policy.rpm.get(provider):
            return []
        if client.rpm.get(provider) and wait((PROVIDER_WIDE, provider)) > 0:
            return []
    return limited


_OWN_LIMITS = frozenset({OutcomeStatus.RPM_LIMITED, OutcomeStatus.TPM_LIMITED})


def retry_after_header(seconds: float) -> int:
    """Whole seconds, at least 1; an admin open without an end (inf) says 60: ask again."""
    return max(1, math.ceil(seconds)) if math.isfinite(seconds) else 60


def render(
    failure: Failure,
    *,
    anthropic: bool = False,
    request_id: str | None = None,
    sdk_should_retry: bool = False,
) -> JSONResponse:
    """The answer in OpenAI's format, or Anthropic's."""
    headers = dict(failure.headers)
    if failure.retry_after_s is not None:
        headers["retry-after"] = str(failure.retry_after_s)
    if failure.walked and not sdk_should_retry:
        headers["x-should-retry"] = "false"
    if anthropic:
        body = anthropic_error(
            failure.message, type_=anthropic_error_type(failure.status), request_id=request_id
        )
    else:
        body = openai_error(
            failure.message, type_=failure.type_, code=failure.code, param=failure.param
        )
    return JSONResponse(body, status_code=failure.status, headers=headers)


def failure_response(
    exc: Exception, *, anthropic: bool = False, sdk_should_retry: bool = False
) -> Response:
    """The HTTP answer for an error raised by parsing or by the client, in OpenAI's format
    (or Anthropic's), with the current request's id."""
    return render(
        failure_of(exc),
        anthropic=anthropic,
        request_id=current_request_id(),
        sdk_should_retry=sdk_should_retry,
    )


def error_format_for(path: str, headers: Headers) -> ErrorFormat:
    """The error format of a request: Anthropic's on `/v1/messages` (and below it) and on
    `/v1/models` when the caller sends `anthropic-version` (Anthropic's SDKs always do);
    OpenAI's everywhere else. `TenantMiddleware` refuses in it too."""
    if path == "/v1/messages" or path.startswith("/v1/messages/"):
        return ANTHROPIC_ERRORS
    if (path == "/v1/models" or path.startswith("/v1/models/")) and "anthropic-version" in headers:
        return ANTHROPIC_ERRORS
    return OPENAI_ERRORS


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed"}


async def http_error(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (an unknown path, a wrong method) as JSON in the path's
    format, instead of plain text an SDK cannot read."""
    if not isinstance(exc, HTTPException):
        raise exc
    form = error_format_for(request.url.path, request.headers)
    request_id = current_request_id() or ""
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    body = form.body(exc.status_code, code, str(exc.detail), request_id)
    return JSONResponse(dict(body), exc.status_code, headers=exc.headers)
