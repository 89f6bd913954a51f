"""`create_app(settings)`: the gateway (`resilience serve`; `uvicorn app.main:app` in a checkout).

The lifespan builds the `ResilientClient` from the config, brings the audit
database to the latest schema (embedded SQLite by default), starts the
database sink and the `[alerts]` webhooks' sinks (`resilience.audit.alerts`), restores
what the audit trail says a restart must not lose (`resilience.audit.restore`), and
flushes the sinks on shutdown. While it serves, SIGHUP re-reads the config file
(`resilience.gateway.reload`): tenants, routes, admin tokens.
`TenantMiddleware` and the admin API (`resilience.embed.admin_app`, at `/admin`) are
mounted as any application would mount them; `/admin/`, `/healthz`, `/readyz` are exempt
from the middleware (admin calls carry their own tokens).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import AsyncIterator, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from resilience.audit.alerts import AlertSink
from resilience.audit.database import create_engine, migrate
from resilience.audit.restore import restore_breakers
from resilience.audit.sink import DatabaseSink
from resilience.breaker.events import AuditSink
from resilience.client.resilient import ResilientClient
from resilience.config.schema import Config
from resilience.embed.admin import admin_app
from resilience.embed.failures import error_format_for, http_error
from resilience.gateway.api import ModelEndpoints
from resilience.gateway.body_timeout import BodyReadTimeoutMiddleware
from resilience.gateway.direct_routes import DirectRoutes
from resilience.gateway.metrics import GatewayMetrics
from resilience.gateway.openapi import openapi
from resilience.gateway.reload import ConfigReloader
from resilience.gateway.settings import Settings
from resilience.tenancy.directory import ConfigTenants
from resilience.tenancy.middleware import TenantMiddleware
from resilience.tenancy.resolvers import ApiKeyResolver, HeaderResolver

logger = logging.getLogger("resilience.gateway")

RESTORE_WAIT_S = 30.0
"""How long the start waits for the spool's replay before reading the trail to restore."""


class Gateway:
    """What the lifespan builds and the endpoints use."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._client: ResilientClient | None = None
        self._engine: AsyncEngine | None = None
        self.sink: DatabaseSink | None = None
        self.metrics: GatewayMetrics | None = None
        self.alerts: list[AlertSink] = []
        """`[alerts]`: one sink per webhook, started by the lifespan."""
        self.tenants = ConfigTenants(settings.config, environ=settings.environ)
        """The config's tenants: the resolver's keys and the client's policies, which a
        reload (`resilience.gateway.reload`) replaces in one step."""
        self.reloader: ConfigReloader | None = None

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
        self.sink = DatabaseSink(
            self._engine,
            spool_path=settings.spool_path,
            journal_path=settings.journal_path,
            journal=settings.journal,
            journal_fsync=settings.journal_fsync,
        )
        await self.sink.start()
        sinks: list[AuditSink] = [self.sink]
        if self.metrics is not None:
            sinks.append(self.metrics)
        # a reload's config when the lifespan runs again (the tenants hold it already)
        config = self.reloader.config if self.reloader is not None else settings.config
        self.alerts = config.alerts.sinks(settings.environ)  # `[alerts]`: breaker webhooks
        for alert_sink in self.alerts:
            await alert_sink.start()
        sinks.extend(self.alerts)
        self._client = ResilientClient.from_config(
            config,
            environ=settings.environ,
            sinks=sinks,
            clock=settings.clock,
            tenants=self.tenants,
        )
        await self._client.start()
        await self._restore(self._engine, self.sink, self._client)
        uninstall = self._reload_on_sighup(app, config, self._client)
        if settings.freeze_gc_on_start:
            gc.collect()  # what is garbage now is freed, not frozen
            gc.freeze()
        try:
            yield
        finally:
            uninstall()
            await self._client.aclose()  # first: verdicts still in flight may emit events
            for alert_sink in self.alerts:
                await alert_sink.aclose()
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

    def _reload_on_sighup(
        self, app: Starlette, config: Config, client: ResilientClient
    ) -> Callable[[], None]:
        """SIGHUP re-reads the config file (`resilience.gateway.reload`), when the config
        came from one; returns what removes the handler."""
        if not os.path.isfile(config.source):
            return lambda: None
        self.reloader = ConfigReloader(
            config.source,
            environ=self.settings.environ,
            config=config,
            client=client,
            tenants=self.tenants,
            admin=getattr(app.state, "admin", None),
        )
        return self.reloader.install()

    @staticmethod
    async def _restore(engine: AsyncEngine, sink: DatabaseSink, client: ResilientClient) -> None:
        """Admin isolations survive a restart; periods the last process left open are closed
        (`resilience.audit.restore`). After the spool an earlier run left is replayed, so the
        trail read is complete; a trail that cannot be read leaves the breakers closed."""
        if not await sink.caught_up(RESTORE_WAIT_S):
            logger.warning("restore: the audit spool is still replaying; reading the trail anyway")
        try:
            done = await restore_breakers(engine, client.registry, sink.emit)
        except Exception as exc:
            logger.warning("restore: could not read the audit trail (%s); nothing restored", exc)
            return
        if done.skipped:
            logger.warning("restore: nothing restored: %s", done.skipped)
        elif done.restored or done.closed:
            logger.warning(
                "restore: %d admin isolations restored, %d open periods closed (process_restart)",
                len(done.restored),
                len(done.closed),
            )

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        """Ready when the config is loaded and every audit event has a way out: the database
        answers, or the spool takes what it cannot (a database outage alone is no reason to
        stop serving: `audit.backlog` shows what waits, `audit.database_up` the writer's view)."""
        database = await self.sink.ping() if self.sink is not None else False
        spooling = self.sink is not None and self.sink.stats.spool_ok
        ready = (database or spooling) and self._client is not None
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
            body["audit"]["backlog"] = self.sink.backlog()
        return JSONResponse(body, status_code=200 if ready else 503)


def create_app(settings: Settings | None = None) -> Starlette:
    """The gateway app; `settings` default to the environment (RESILIENCE_CONFIG, DATABASE_URL)."""
    settings = settings or Settings.from_env()
    gateway = Gateway(settings)
    config = settings.config
    metrics = GatewayMetrics(
        lambda: gateway._client,
        lambda: gateway.sink,
        tenant_label=settings.metrics_tenant_label,
        max_tenants=config.server.metrics_max_tenants,
        known_tenants=config.tenants,
        token_sha256=config.server.metrics_token_sha256,
        alerts=lambda: gateway.alerts,
    )
    gateway.metrics = metrics
    models = ModelEndpoints(
        lambda: gateway.client,
        max_body_bytes=settings.body_limit,
        metrics=metrics,
        sdk_should_retry=config.server.sdk_should_retry,
    )
    admin = admin_app(
        lambda: gateway.client, tokens=config.admin_tokens, engine=lambda: gateway.engine
    )
    if config.server.tenant_from == "api_key":
        resolver: ApiKeyResolver | HeaderResolver = ApiKeyResolver(gateway.tenants)
    else:
        resolver = HeaderResolver(config.server.tenant_header)
    posts = models.posts()
    app = Starlette(
        routes=[
            # the router keeps the POSTs too: its 405 for another method, its listing
            *(Route(path, endpoint, methods=["POST"]) for path, endpoint in posts.items()),
            Route("/v1/models", models.list_models, methods=["GET"]),
            Route("/v1/models/{model:path}", models.get_model, methods=["GET"]),
            Mount("/admin", app=admin),
            Route("/healthz", gateway.healthz, methods=["GET"]),
            Route("/readyz", gateway.readyz, methods=["GET"]),
            Route("/metrics", metrics.endpoint, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
        ],
        middleware=[
            Middleware(
                BodyReadTimeoutMiddleware,
                timeout_s=settings.body_read_timeout_s,
                error_format=error_format_for,
            ),
            Middleware(
                TenantMiddleware,
                resolver=resolver,
                exempt_paths=("/healthz", "/readyz", "/metrics", "/openapi.json", "/admin/"),
                error_format=error_format_for,
            ),
            Middleware(DirectRoutes, routes=posts, on_http_error=http_error),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=metrics.around(gateway.lifespan),  # across workers: publishes this one's
    )
    app.state.gateway = gateway
    app.state.admin = admin  # `resilience.embed.admin.replace_tokens(app.state.admin, ...)`
    return app
