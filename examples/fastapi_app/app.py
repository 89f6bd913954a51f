"""A FastAPI app with per-tenant breakers and fallback, an admin API and an audit trail.

Tenants and their gateway keys live in the app's own `tenants` table; breaker transitions
go to `breaker_events` in the same database. Run it (examples/fastapi_app/README.md):

    RESILIENCE_CONFIG=resilience.toml DATABASE_URL=postgresql://localhost/app uvicorn app:app
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from pydantic import BaseModel
from sqlalchemy import Column, Float, MetaData, String, Table, select

from resilience import (
    ApiKeyResolver,
    CachedTenants,
    ChatRequest,
    Message,
    ResilientClient,
    TenantMiddleware,
    TenantPolicy,
    load_config,
)
from resilience.audit.database import create_engine, migrate
from resilience.audit.sink import DatabaseSink
from resilience.embed import admin_app, exception_handlers
from resilience.embed.fastapi import CurrentTenant
from resilience.tenancy.middleware import DEFAULT_EXEMPT_PATHS

config = load_config()  # $RESILIENCE_CONFIG: providers, routes, breaker policy, admin tokens
engine = create_engine(config.database_url)  # $DATABASE_URL: the tenants and the audit trail

metadata = MetaData()
tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("key_sha256", String(64), nullable=False, unique=True),  # sha256(key).hexdigest()
    Column("rpm", Float),  # requests per minute to each provider; NULL: no limit of its own
)


class TenantTable:
    """The `tenants` table as a `TenantLookup`: who owns a gateway key, what they may use."""

    async def tenant_for_key(self, key_sha256: str) -> str | None:
        query = select(tenants.c.tenant_id).where(tenants.c.key_sha256 == key_sha256)
        async with engine.connect() as db:
            return await db.scalar(query)

    async def policy_for(self, tenant: str) -> TenantPolicy | None:
        query = select(tenants.c.rpm).where(tenants.c.tenant_id == tenant)
        async with engine.connect() as db:
            rpm = await db.scalar(query)
        return TenantPolicy(rpm=dict.fromkeys(config.providers, rpm)) if rpm else None


# Asked once per key (and per tenant) per TTL, unknown keys included: a new row is served
# and a deleted one refused within the TTL, and a flood of made-up keys stays off the table.
directory = CachedTenants(TenantTable(), ttl_s=float(os.environ.get("TENANT_TTL_S", "30")))
sink = DatabaseSink(engine, spool_path=os.environ.get("RESILIENCE_SPOOL", "audit-spool.jsonl"))
client = ResilientClient.from_config(config, sinks=[sink], tenants=directory)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await migrate(config.database_url)  # the audit trail's tables
    async with engine.begin() as db:
        await db.run_sync(metadata.create_all)  # the app's own, when absent
    async with sink, client:  # start; at shutdown close the client, then flush the sink
        yield
    await engine.dispose()


app = FastAPI(lifespan=lifespan, exception_handlers=exception_handlers(client))
app.add_middleware(
    TenantMiddleware,
    resolver=ApiKeyResolver(directory),  # Authorization: Bearer <gateway key>
    exempt_paths=(*DEFAULT_EXEMPT_PATHS, "/admin/"),  # docs, health; admin calls carry tokens
)
app.mount("/admin", admin_app(client, tokens=config.admin_tokens, engine=engine))


class Question(BaseModel):
    question: str


@app.post("/ask")
async def ask(body: Question, tenant: CurrentTenant) -> dict[str, str]:
    """The first healthy target of the `chat` route answers; none: 503 with Retry-After."""
    chat = ChatRequest(messages=(Message(role="user", content=body.question),), max_tokens=256)
    result = await client.complete(chat, route="chat", tenant=tenant)
    return {"tenant": tenant, "answer": result.value.text, "by": str(result.target)}
