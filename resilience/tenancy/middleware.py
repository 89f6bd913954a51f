"""Who is calling: the tenant and request id of the current request, in contextvars.

`TenantMiddleware` is pure ASGI (no `BaseHTTPMiddleware`, which breaks
contextvars and streaming): it resolves the tenant from the request headers,
sets `current_tenant()` for the whole downstream call — streaming bodies and
background tasks run after the response included — and resets it afterwards.
Missing or invalid tenants get an OpenAI-shaped JSON error and the app never
runs. Lifespan scopes pass through untouched; exempt paths run without a tenant.
"""

from __future__ import annotations

import inspect
import json
import re
import uuid
from collections.abc import Iterable

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
            "/", as a prefix ("/static/" covers "/static/app.css").

    Every http response and websocket accept gets an `x-request-id` header: the
    incoming one when it is 1-128 characters of A-Z a-z 0-9 . _ -, else a new
    uuid4 hex. Refusals: 401 `missing_tenant`, 400 `invalid_tenant`, or what
    the resolver raised; on a websocket, an http denial response when the
    server supports `websocket.http.response`, else a close with code 1008.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        resolver: Resolver,
        exempt_paths: Iterable[str] = ("/healthz", "/readyz", "/metrics"),
    ) -> None:
        paths = tuple(exempt_paths)
        if isinstance(exempt_paths, str) or not all(p.startswith("/") for p in paths):
            raise ValueError("exempt_paths: expected paths starting with '/'")
        self.app = app
        self.resolver = resolver
        self.exempt_exact = frozenset(p for p in paths if not p.endswith("/"))
        self.exempt_prefixes = tuple(p for p in paths if p.endswith("/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = _sane_request_id(headers.get("x-request-id"))
        send = _with_request_id(send, request_id)
        tenant: TenantId | None = None
        if not self._exempt(scope.get("path", "")):
            try:
                tenant = await self._resolve(headers)
            except TenantRejected as rejected:
                await _refuse(scope, send, rejected)
                return
        tenant_token = _tenant.set(tenant)
        id_token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, send)
        finally:
            _request_id.reset(id_token)
            _tenant.reset(tenant_token)

    def _exempt(self, path: str) -> bool:
        return path in self.exempt_exact or path.startswith(self.exempt_prefixes)

    async def _resolve(self, headers: Headers) -> TenantId:
        try:
            found = self.resolver(headers)
            if inspect.isawaitable(found):
                found = await found
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
    return uuid.uuid4().hex


def _with_request_id(send: Send, request_id: str) -> Send:
    async def send_with_id(message: Message) -> None:
        if message["type"] in _HEADERED_STARTS:
            message.setdefault("headers", [])
            MutableHeaders(scope=message).setdefault("x-request-id", request_id)
        await send(message)

    return send_with_id


async def _refuse(scope: Scope, send: Send, rejected: TenantRejected) -> None:
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await _send_error(send, rejected, prefix="websocket.http.response")
        else:
            # A close before accept: the server answers the handshake with a 403.
            reason = rejected.code[:100]
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": reason})
        return
    await _send_error(send, rejected, prefix="http.response")


async def _send_error(send: Send, rejected: TenantRejected, *, prefix: str) -> None:
    status = rejected.status
    message = rejected.message
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    error_type = _ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    # json.dumps escapes control characters and non-ASCII, so nothing raw reaches the wire.
    body = json.dumps(
        {"error": {"message": message, "type": error_type, "code": rejected.code}}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": f"{prefix}.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}.body", "body": body})
