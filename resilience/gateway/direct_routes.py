"""The model endpoints' POSTs, dispatched by exact path before Starlette's router.

Every request to the gateway is one of four POSTs. Starlette's way to them is its
exception middleware, the router's match of each route, and `request_response`'s two
wrappers: about twenty calls per request that decide nothing for these paths (the
endpoints answer every failure themselves; `resilience.gateway.api`). `DirectRoutes`
sits where that stack begins (after `TenantMiddleware`), sends an exact path-and-method
match straight to its endpoint, and hands everything else (other paths, other methods,
websockets, the lifespan) to the stack unchanged, so 404, 405 and the admin API answer
as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from starlette._utils import get_route_path  # the router's own: both match the same path
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

Endpoint = Callable[[Request], Awaitable[Response]]
ErrorHandler = Callable[[Request, Exception], Awaitable[Response]]


class DirectRoutes:
    """Pure ASGI: `routes` (path to endpoint) answer their POSTs without the router.

    An `HTTPException` an endpoint raises is answered by `on_http_error`, as the app's
    exception middleware would have."""

    def __init__(
        self, app: ASGIApp, *, routes: Mapping[str, Endpoint], on_http_error: ErrorHandler
    ) -> None:
        self.app = app
        self.routes = dict(routes)
        self.on_http_error = on_http_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = (
            self.routes.get(get_route_path(scope))
            if scope["type"] == "http" and scope["method"] == "POST"
            else None
        )
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        try:
            response = await endpoint(request)
        except HTTPException as exc:
            response = await self.on_http_error(request, exc)
        await response(scope, receive, send)
