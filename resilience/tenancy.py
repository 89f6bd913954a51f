"""Who is calling: the tenant of the current request, in a contextvar.

`TenantMiddleware` is pure ASGI (no `BaseHTTPMiddleware`, which breaks
contextvars and streaming): it resolves the tenant from the request headers,
sets `current_tenant()` for the whole downstream call — streaming bodies and
background tasks run after the response included — and resets it afterwards.
Missing or invalid tenants get an OpenAI-shaped JSON error and the app never
runs. Lifespan scopes and exempt paths pass through untouched.
"""

from __future__ import annotations

import contextvars
import inspect
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from resilience.exceptions import NoTenantError
from resilience.resolvers import InvalidTenantId, Resolver, TenantRejected, validate_tenant_id
from resilience.types import TenantId

_tenant: contextvars.ContextVar[TenantId | None] = contextvars.ContextVar(
    "resilience_tenant", default=None
)
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "resilience_request_id", default=None
)
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def current_tenant() -> TenantId:
    """The tenant of the current request or `tenant_scope()`; raises `NoTenantError` outside."""
    tenant = _tenant.get()
    if tenant is None:
        raise NoTenantError(
            "no tenant is set: call this inside a request handled by TenantMiddleware, "
            "or wrap background work in tenant_scope(tenant_id)"
        )
    return tenant


def current_tenant_or_none() -> TenantId | None:
    return _tenant.get()


def current_request_id() -> str | None:
    """The current request's id (from `x-request-id`, or generated), for audit rows and logs."""
    return _request_id.get()


@contextmanager
def tenant_scope(tenant_id: str, *, request_id: str | None = None) -> Iterator[TenantId]:
    """Set the tenant for background jobs; nested scopes restore the outer one on exit."""
    tenant = validate_tenant_id(tenant_id)
    token = _tenant.set(tenant)
    id_token = _request_id.set(request_id) if request_id is not None else None
    try:
        yield tenant
    finally:
        if id_token is not None:
            _request_id.reset(id_token)
        _tenant.reset(token)


class TenantMiddleware:
    """Resolve the tenant of each http and websocket request and set `current_tenant()`.

    Args:
        app: the ASGI app to wrap.
        resolver: a resolver object (`HeaderResolver`, `ApiKeyResolver`) or any
            callable taking the request `Headers` and returning the tenant id
            (sync or async); raise `TenantRejected` to refuse.
        exempt_paths: paths served without a tenant: exact matches, or prefixes
            when they end with "/".
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        resolver: Resolver,
        exempt_paths: Iterable[str] = ("/healthz", "/readyz", "/metrics"),
    ) -> None:
        self.app = app
        self.resolver = resolver
        paths = tuple(exempt_paths)
        self.exempt_exact = frozenset(p for p in paths if not p.endswith("/"))
        self.exempt_prefixes = tuple(p for p in paths if p.endswith("/"))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")
        if path in self.exempt_exact or path.startswith(self.exempt_prefixes):
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        request_id = _sane_request_id(headers.get("x-request-id"))
        try:
            tenant = validate_tenant_id(await self._resolve(headers))
        except TenantRejected as rejected:
            await _refuse(scope, send, rejected, request_id)
            return
        except InvalidTenantId as invalid:
            bad = TenantRejected(400, "invalid_tenant", str(invalid))
            await _refuse(scope, send, bad, request_id)
            return
        tenant_token = _tenant.set(tenant)
        id_token = _request_id.set(request_id)
        try:
            await self.app(scope, receive, _with_request_id(send, request_id))
        finally:
            _request_id.reset(id_token)
            _tenant.reset(tenant_token)

    async def _resolve(self, headers: Headers) -> str:
        found = self.resolver(headers)
        if inspect.isawaitable(found):
            found = await found
        if not isinstance(found, str):
            raise TenantRejected(401, "missing_tenant", "the request names no tenant")
        return found


def _sane_request_id(value: str | None) -> str:
    if value is not None and _REQUEST_ID.fullmatch(value):
        return value
    return uuid.uuid4().hex


def _with_request_id(send: Send, request_id: str) -> Send:
    async def send_with_id(message: Message) -> None:
        if message["type"] == "http.response.start":
            message.setdefault("headers", [])
            MutableHeaders(scope=message).setdefault("x-request-id", request_id)
        await send(message)

    return send_with_id


async def _refuse(scope: Scope, send: Send, rejected: TenantRejected, request_id: str) -> None:
    body = json.dumps(
        {
            "error": {
                "message": rejected.message,
                "type": "invalid_request_error"
                if rejected.status == 400
                else "authentication_error",
                "code": rejected.code,
            }
        }
    ).encode()
    if scope["type"] == "websocket":
        if "websocket.http.response" in scope.get("extensions", {}):
            await _send_http(
                send, rejected.status, body, request_id, prefix="websocket.http.response"
            )
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": rejected.code})
        return
    await _send_http(send, rejected.status, body, request_id, prefix="http.response")


async def _send_http(send: Send, status: int, body: bytes, request_id: str, *, prefix: str) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
    ]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": f"{prefix}.start", "status": status, "headers": headers})
    await send({"type": f"{prefix}.body", "body": body})
