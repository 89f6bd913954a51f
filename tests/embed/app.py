"""The FastAPI app the embed tests serve: what a team embedding the library writes.

`TenantMiddleware` with the tenants' keys, a lifespan opening the audit database, the
`DatabaseSink` and the `ResilientClient` as async context managers, the library's exception
handlers, the admin API mounted at `/admin`, and one endpoint taking `CurrentTenant`.
The config points at a chaos upstream; the client's clock is the test's `FakeClock`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from resilience.audit.database import create_engine, migrate
from resilience.audit.sink import DatabaseSink
from resilience.client.resilient import ResilientClient
from resilience.config.load import parse_config
from resilience.config.schema import Config
from resilience.embed import admin_app, exception_handlers
from resilience.embed.fastapi import CurrentTenant
from resilience.models import ChatRequest, Message
from resilience.tenancy.middleware import DEFAULT_EXEMPT_PATHS, TenantMiddleware
from resilience.tenancy.resolvers import ApiKeyResolver, hash_key
from resilience.types import Clock
from tests.support.gateway import admin_config, chaos_providers

KEYS = {"acme": "embed-key-acme", "globex": "embed-key-globex"}
ADMIN = {"ops": "embed-admin-ops", "acme-support": "embed-admin-acme"}
ENVIRON = {"UPSTREAM_KEY": "upstream-secret-key"}


def config(root: str) -> Config:
    """Routes `chat` (primary, then claude) and `solo` (primary only); globex may send one
    request a minute to primary."""
    return parse_config(
        {
            "retry": {"max_attempts": 2, "base_delay_s": 0.001, "max_delay_s": 0.002},
            "providers": chaos_providers(root),
            "routes": {
                "chat": {"targets": ["primary:gpt-4.1", "claude:claude-sonnet-4-6"]},
                "solo": {"targets": ["primary:gpt-4.1"]},
            },
            "tenants": {
                "acme": {"api_key_sha256": [hash_key(KEYS["acme"])]},
                "globex": {
                    "api_key_sha256": [hash_key(KEYS["globex"])],
                    "providers": {"primary": {"rpm": 1}},
                },
            },
            "admin": admin_config(ADMIN),
        },
        environ=ENVIRON,
    )


class Ask(BaseModel):
    question: str
    route: str = "chat"


def build(cfg: Config, *, database_url: str, spool_path: Path, clock: Clock) -> FastAPI:
    """The app; `app.state` holds the client, the sink and the engine while it runs."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await migrate(database_url)
        engine = create_engine(database_url)
        try:
            async with (
                DatabaseSink(engine, spool_path=spool_path) as sink,
                ResilientClient.from_config(
                    cfg, environ=ENVIRON, sinks=[sink], clock=clock
                ) as client,
            ):
                app.state.engine, app.state.sink, app.state.client = engine, sink, client
                yield
        finally:
            await engine.dispose()

    app = FastAPI(
        title="embedded",
        lifespan=lifespan,
        exception_handlers=exception_handlers(lambda: app.state.client),
    )
    app.add_middleware(
        TenantMiddleware,
        resolver=ApiKeyResolver(cfg.tenant_by_key_hash()),
        exempt_paths=(*DEFAULT_EXEMPT_PATHS, "/admin/", "/public/"),
    )
    app.mount(
        "/admin",
        admin_app(
            lambda: app.state.client, tokens=cfg.admin_tokens, engine=lambda: app.state.engine
        ),
    )

    @app.post("/v1/answer")
    async def answer(ask: Ask, tenant: CurrentTenant) -> dict[str, Any]:
        client: ResilientClient = app.state.client
        question = ChatRequest(
            messages=(Message(role="user", content=ask.question),), max_tokens=64
        )
        result = await client.complete(question, route=ask.route)
        return {"tenant": tenant, "provider": result.target.provider, "text": result.value.text}

    @app.get("/public/whoami")
    async def whoami(tenant: CurrentTenant) -> dict[str, str]:
        """Exempt from the middleware: no tenant, so the dependency raises NoTenantError."""
        return {"tenant": tenant}

    return app
