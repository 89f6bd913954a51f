"""Who is calling: the tenant and request id of the current request, in contextvars.

`TenantMiddleware` is pure ASGI (no `BaseHTTPMiddleware`, which breaks
contextvars and streaming): it resolves the tenant from the request headers,
sets `current_tenant()` for the whole downstream call — streaming bodies and
background tasks run after the response included — and resets it afterwards.
Missing or invalid tenants get a JSON error and the app never runs: OpenAI's shape by
default, or the `ErrorFormat` the application picks for the path (`ANTHROPIC_ERRORS` for
an Anthropic-compatible API). Lifespan scopes pass through untouched; exempt paths run
without a tenant.
"""

from __future__ import annotations

import inspect
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resilience.tenancy.context import _request_id, _tenant
from resilience.tenancy.resolvers import (
    InvalidTenantId,
    Resolver,
    TenantRejected,
    validate_tenant_id,
)
from resilience.types import TenantId

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
_HEADERED_STARTS = frozenset(
    {"http.response.start", "websocket.http.response.start", "websocket.accept"}
)
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
}
_MAX_MESSAGE = 200
_POLICY_VIOLATION = 1008
logger = logging.getLogger("resilience.tenancy")


def openai_error_type(status: int) -> str:
    """The error `type` an OpenAI-style body gives a refusal with this status."""
    return _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")


def anthropic_error_type(status: int) -> str:
    """The error `type` Anthropic's API gives this status: one of the types its SDK knows
    (invalid_request_error, authentication_error, permission_error, not_found_error,
    rate_limit_error, api_error, overloaded_error)."""
    if status in (503, 529):
        return "overloaded_error"
    return openai_error_type(status)


def openai_error_body(status: int, code: str, message: str, request_id: str) -> dict[str, Any]:
    """`{"error": {"message", "type", "param", "code"}}`: all four keys, as OpenAI sends."""
    error = {"message": message, "type": openai_error_type(status), "param": None, "code": code}
    return {"error": error}


def anthropic_error_body(status: int, code: str, message: str, request_id: str) -> dict[str, Any]:
    """`{"type": "error", "error": {"type", "message"}, "request_id"}`, as Anthropic sends
    (its errors carry no code: the status and the type say what happened)."""
    error = {"type": anthropic_error_type(status), "message": message}
    return {"type": "error", "error": error, "request_id": request_id}


ErrorBody = Callable[[int, str, str, str], Mapping[str, Any]]
"""(status, code, message, request id) -> the JSON body of a refusal."""


@dataclass(frozen=True, slots=True)
class ErrorFormat:
    """How an API spells a refusal, and which response headers carry the request id."""

    body: ErrorBody
    request_id_headers: tuple[str, ...] = ("x-request-id",)


OPENAI_ERRORS = ErrorFormat(openai_error_body)
ANTHROPIC_ERRORS = ErrorFormat(anthropic_error_body, ("x-request-id", "request-id"))
"""Anthropic's SDKs read the request id from `request-id`; `x-request-id` stays for the rest."""

ErrorFormatFor = Callable[[str, Headers], ErrorFormat]
"""(path, request headers) -> the format of that request's refusals."""

DEFAULT_EXEMPT_PATHS = (
    "/healthz",
    "/readyz",
    "/metrics",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
)
"""Served without a tenant unless the app gives its own list: health, metrics, and
FastAPI's documentation (`/docs`, `/redoc`, `/openapi.json`), which a browser loads without
a key. They say what the API is, never a tenant's data."""
LOOKUP_FAILED = "the tenant directory is unavailable; retry"
"""The message of a 503 `tenant_lookup_failed` (here and in `resilience.embed`'s handlers)."""


class TenantMiddleware:
    """Resolve the tenant of each http and websocket request and set `current_tenant()`.

    Args:
        app: the ASGI app to wrap.
        resolver: a resolver object (`HeaderResolver`, `ApiKeyResolver`) or any
            callable taking the request `Headers` and returning the tenant id
            (sync or async); return None when there is none, raise
            `TenantRejected` to refuse with your own status and code.
        exempt_paths: paths served without a tenant (`current_tenant_or_none()`
            is None there): an entry matches exactly, or, when it ends with
            "/", as a prefix ("/static/" covers "/static/app.css"). A list given
            replaces `DEFAULT_EXEMPT_PATHS` (health, metrics, FastAPI's docs); extend
            it with `(*DEFAULT_EXEMPT_PATHS, "/static/")`.
        error_format: how refusals look: an `ErrorFormat` (`OPENAI_ERRORS`, the default,
            or `ANTHROPIC_ERRORS`), or a callable taking the path and the request
            `Headers` and returning one, for an app that speaks several APIs.

    Every http response and websocket accept gets an `x-request-id` header (and the
    format's other `request_id_headers`): the incoming one when it is 1-128 characters
    of A-Z a-z 0-9 . _ -, else 32 new random hex digits (a uuid4 hex's length). Refusals: 401
    `missing_tenant`, 400 `invalid_tenant`, or what the resolver raised
    (`TenantRejected`); any other error of the resolver (its database is down) 503
    `tenant_lookup_failed` with `Retry-After`, never 401; on a websocket, an http denial
    response when the server supports `websocket.http.response`, else a close with
    code 1008.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        resolver: Resolver,
        exempt_paths: Iterable[str] = DEFAULT_EXEMPT_PATHS,
        error_format: ErrorFormat | ErrorFormatFor = OPENAI_ERRORS,
    ) -> None:
        paths = tuple(exempt_paths)
        if isinstance(exempt_paths, str) or not all(p.startswith("/") for p in paths):
            raise ValueError("exempt_paths: expected paths starting with '/'")
        self.app = app
        self.resolver = resolver
        self.exempt_exact = frozenset(p for p in paths if not p.endswith("/"))
        self.exempt_prefixes = tuple(p for p in paths if p.endswith("/"))
        self.error_format = error_format

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        path = scope.get("path", "")
        request_id = _sane_request_id(headers.get("x-request-id"))
        form = self._format(path, headers)
        send = _with_request_id(send, request_id, form.request_id_headers)
        tenant: TenantId | None = None
        if not self._exempt(path):
            try:
                tenant = await self._resolve(headers)
            except TenantRejected as rejected:
                await _refuse(scope, send, rejected, form, request_id)
                return
        tenant_token = _tenant.set(tenant)
        id_token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_id.reset(id_token)
            _tenant.reset(tenant_token)

    def _format(self, path: str, headers: Headers) -> ErrorFormat:
        chosen = self.error_format
        return chosen if isinstance(chosen, ErrorFormat) else chosen(path, headers)

    def _exempt(self, path: str) -> bool:
        return path in self.exempt_exact or path.startswith(self.exempt_prefixes)

    async def _resolve(self, headers: Headers) -> TenantId:
        try:
            try:
                found = self.resolver(headers)
                if inspect.isawaitable(found):
                    found = await found
            except (TenantRejected, InvalidTenantId):
                raise
            except Exception as exc:
                # What the resolver asks (the app's tenants table) failed: the key may be
                # good, so not 401; the caller may retry.
                logger.warning(
                    "tenant lookup failed (%s: %s); answered 503",
                    type(exc).__name__,
                    str(exc)[:_MAX_MESSAGE],
                )
                raise TenantRejected(503, "tenant_lookup_failed", LOOKUP_FAILED) from exc
            if found is None:
                raise TenantRejected(401, "missing_tenant", "the request names no tenant")
            if not isinstance(found, str):
                raise TypeError(
                    f"resolver {self.resolver!r} returned {type(found).__name__}, "
                    "expected a tenant id (str) or None"
                )
            return validate_tenant_id(found)
        except InvalidTenantId as invalid:
            raise TenantRejected(400, "invalid_tenant", str(invalid)) from None

    def __repr__(self) -> str:
        exempt = sorted(self.exempt_exact) + list(self.exempt_prefixes)
        return f"TenantMiddleware(resolver={self.resolver!r}, exempt_paths={exempt!r})"


def _sane_request_id(value: str | None) -> str:
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return os.urandom(16).hex()  # as long as uuid4().hex, without building a UUID


def _with_request_id(send: Send, request_id: str, names: tuple[str, ...]) -> Send:
    async def send_with_id(message: Message) -> None:
        if message["type"] in _HEADERED_STARTS:
            message.setdefault("headers", [])
            headers = MutableHeaders(scope=message)
            for name in names:
                headers.setdefault(name, request_id)
        await send(message)

    return send_with_id


async def _refuse(
    scope: Scope, send: Send, rejected: TenantRejected, form: ErrorFormat, request_id: str
) -> None:
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await _send_error(send, rejected, form, request_id, prefix="websocket.http.response")
        else:
            # A close before accept: the server answers the handshake with a 403.
            reason = rejected.code[:100]
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": reason})
        return
    await _send_error(send, rejected, form, request_id, prefix="http.response")


async def _send_error(
    send: Send, rejected: TenantRejected, form: ErrorFormat, request_id: str, *, prefix: str
) -> None:
    status = rejected.status
    message = rejected.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    # json.dumps escapes control characters and non-ASCII, so nothing raw reaches the wire.
    body = json.dumps(form.body(status, rejected.code, message, request_id)).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    elif status == 503:
        headers.append((b"retry-after", b"1"))
    await send({"type": f"{prefix}.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}.body", "body": body})
