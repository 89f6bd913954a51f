"""`create_app(settings)` and the module-level `app` for `uvicorn app.main:app`.

The lifespan builds the `ResilientClient` from the config, brings the audit
database to the latest schema (embedded SQLite by default), starts the
database sink, and flushes it on shutdown. `TenantMiddleware` is mounted as
any user would mount it; `/admin`, `/healthz`, `/readyz` are exempt (admin
calls carry their own tokens).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from app.admin import AdminEndpoints
from app.api import ModelEndpoints
from app.body_timeout import BodyReadTimeoutMiddleware
from app.metrics import GatewayMetrics
from app.openapi import openapi
from app.settings import Settings
from resilience.audit.database import create_engine, migrate
from resilience.audit.sink import DatabaseSink
from resilience.client import ResilientClient
from resilience.events import AuditSink
from resilience.resolvers import ApiKeyResolver, HeaderResolver
from resilience.tenancy import TenantMiddleware

logger = logging.getLogger("resilience.gateway")


class Gateway:
    """What the lifespan builds and the endpoints use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: ResilientClient | None = None
        self._engine: AsyncEngine | None = None
        self.sink: DatabaseSink | None = None
        self.metrics: GatewayMetrics | None = None

    @property
    def client(self) -> ResilientClient:
        if self._client is None:
            raise RuntimeError("the gateway is not started (lifespan not run)")
        return self._client

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the gateway is not started (lifespan not run)")
        return self._engine

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        settings = self.settings
        if settings.migrate_on_start:
            await migrate(settings.database_url)
        self._engine = create_engine(settings.database_url)
        self.sink = DatabaseSink(self._engine, spool_path=settings.spool_path)
        await self.sink.start()
        sinks: list[AuditSink] = [self.sink]
        if self.metrics is not None:
            sinks.append(self.metrics)
        self._client = ResilientClient.from_config(
            settings.config, environ=settings.environ, sinks=sinks
        )
        await self._client.start()
        try:
            yield
        finally:
            await self._client.aclose()  # first: verdicts still in flight may emit events
            await self.sink.aclose()
            stats = self.sink.stats
            logger.info(
                "shutdown: audit events received %d, written %d, spooled %d (replayed at the "
                "next start), spool replayed %d",
                stats.received,
                stats.written,
                stats.spooled,
                stats.replayed,
            )
            await self._engine.dispose()

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        database = await self.sink.ping() if self.sink is not None else False
        ready = database and self._client is not None
        body: dict[str, Any] = {
            "ready": ready,
            "database": database,
            "config": self._client is not None,
        }
        if self._client is not None:
            # a Redis outage does not make the gateway unready: breakers go process-local
            body["breakers"] = self._client.registry.store.status()
        if self.sink is not None:
            body["audit"] = {
                k: getattr(self.sink.stats, k) for k in self.sink.stats.__dataclass_fields__
            }
        return JSONResponse(body, status_code=200 if ready else 503)


DASHBOARD = Path(__file__).parent / "dashboard" / "index.html"


async def dashboard(request: Request) -> Response:
    """The operator's page; it reads the admin API with the token the operator enters."""
    return FileResponse(DASHBOARD, media_type="text/html")


def create_app(settings: Settings | None = None) -> Starlette:
    """The gateway app; `settings` default to the environment (RESILIENCE_CONFIG, DATABASE_URL)."""
    settings = settings or Settings.from_env()
    gateway = Gateway(settings)
    config = settings.config
    metrics = GatewayMetrics(
        lambda: gateway._client, lambda: gateway.sink, tenant_label=settings.metrics_tenant_label
    )
    gateway.metrics = metrics
    models = ModelEndpoints(
        lambda: gateway.client, max_body_bytes=settings.max_body_bytes, metrics=metrics
    )
    admin = AdminEndpoints(config.admin_tokens, lambda: gateway.client, lambda: gateway.engine)
    if config.server.tenant_from == "api_key":
        resolver: ApiKeyResolver | HeaderResolver = ApiKeyResolver(config.tenant_by_key_hash())
    else:
        resolver = HeaderResolver(config.server.tenant_header)
    circuit = "/admin/circuits/{tenant}/{provider}"
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", models.chat_completions, methods=["POST"]),
            Route("/v1/messages", models.messages, methods=["POST"]),
            Route("/v1/embeddings", models.embeddings, methods=["POST"]),
            Route("/admin/", dashboard, methods=["GET"]),
            Route("/admin/circuits", admin.circuits, methods=["GET"]),
            Route(circuit, admin.get_circuit, methods=["GET"]),
            Route(circuit + "/reset", admin.reset, methods=["POST"]),
            Route(circuit + "/open", admin.force_open, methods=["POST"]),
            Route("/admin/events", admin.events, methods=["GET"]),
            Route("/admin/summary", admin.summary, methods=["GET"]),
            Route("/admin/providers", admin.providers, methods=["GET"]),
            Route("/healthz", gateway.healthz, methods=["GET"]),
            Route("/readyz", gateway.readyz, methods=["GET"]),
            Route("/metrics", metrics.endpoint, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        middleware=[
            Middleware(BodyReadTimeoutMiddleware, timeout_s=settings.body_read_timeout_s),
            Middleware(
                TenantMiddleware,
                resolver=resolver,
                exempt_paths=("/healthz", "/readyz", "/metrics", "/openapi.json", "/admin/"),
            )
        ],
        lifespan=gateway.lifespan,
    )
    app.state.gateway = gateway
    return app


def __getattr__(name: str) -> Starlette:
    """`app.main:app` is built from the environment on first access, not at import."""
    if name == "app":
        app = create_app()
        globals()["app"] = app
        return app
    raise AttributeError(name)
