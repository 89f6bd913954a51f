"""`admin_app(...)`: the admin API as one Starlette app, to mount where the application wants.

`Mount("/admin", app=admin_app(client, tokens=...))` gives any Starlette or FastAPI app
the routes the gateway serves (the gateway mounts this same app at `/admin`): the
circuits, reset and isolate, the audit events and summary, the providers' health, and the
operator's dashboard at the mount point itself. Paths below are relative to the mount.
`AdminGuard` authenticates every path before routing and adds the browser security
headers; Starlette's own refusals (unknown path, wrong method) answer JSON.

The client and the engine may be given as callables, for an application that builds them
in its lifespan, after the app (and this mount) was made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route

from resilience.client.resilient import ResilientClient
from resilience.config.schema import AdminToken
from resilience.embed.admin_endpoints import AdminEndpoints, unauthenticated
from resilience.embed.admin_guard import AdminGuard
from resilience.embed.deferred import deferred_client, deferred_engine
from resilience.embed.failures import http_error

DASHBOARD = Path(__file__).parent / "dashboard"
DASHBOARD_FILES = {
    "/": ("index.html", "text/html"),
    "/dashboard.js": ("dashboard.js", "text/javascript"),
    "/dashboard.css": ("dashboard.css", "text/css"),
}
"""The operator's page and its script and style (files, so the page needs no inline code
under its Content-Security-Policy). They hold no data: they load without a token. The
page calls the API relative to itself, so it works wherever the app is mounted."""


def admin_app(
    client: ResilientClient | Callable[[], ResilientClient],
    *,
    tokens: Mapping[str, AdminToken],
    engine: AsyncEngine | Callable[[], AsyncEngine] | None = None,
    dashboard: bool = True,
) -> Starlette:
    """The admin API; see the module docstring.

    Args:
        client: the `ResilientClient` whose breakers it shows and changes (resets and
            isolations go through its registry, so they reach its audit sinks).
        tokens: the admin tokens by name (`Config.admin_tokens`, or `AdminToken`s built in
            code); a token with a `tenant` sees and changes only that tenant.
        engine: the audit database, for `/events` and `/summary`; without it those two
            answer 503 saying so.
        dashboard: serve the operator's page at the mount point.
    """
    endpoints = AdminEndpoints(tokens, deferred_client(client), deferred_engine(engine))
    circuit = "/circuits/{tenant}/{provider}"
    public = DASHBOARD_FILES if dashboard else {}
    app = Starlette(
        routes=[
            *(Route(p, _file(*f), methods=["GET"]) for p, f in public.items()),
            Route("/circuits", endpoints.circuits, methods=["GET"]),
            Route(circuit, endpoints.get_circuit, methods=["GET"]),
            Route(circuit + "/reset", endpoints.reset, methods=["POST"]),
            Route(circuit + "/open", endpoints.force_open, methods=["POST"]),
            Route("/events", endpoints.events, methods=["GET"]),
            Route("/summary", endpoints.summary, methods=["GET"]),
            Route("/providers", endpoints.providers, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                AdminGuard,
                authenticated=endpoints.authenticated,
                refusal=unauthenticated,
                public=public,
            )
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.endpoints = endpoints
    return app


def replace_tokens(app: Starlette, tokens: Mapping[str, AdminToken]) -> None:
    """Swap the admin tokens of an app `admin_app` made (the gateway's config reload): the
    next request is checked against the new set, none against a mix."""
    endpoints: AdminEndpoints = app.state.endpoints
    endpoints.use_tokens(tokens)


def _file(name: str, media_type: str) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        return FileResponse(DASHBOARD / name, media_type=media_type)

    return serve
