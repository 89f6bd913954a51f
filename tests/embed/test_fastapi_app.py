"""The library embedded in a FastAPI app (tests/embed/app.py), served by uvicorn on a real
socket, on the chaos upstream: the app answers outages, missing tenants and its own rate
limits as the gateway does, its docs load without a key, and the admin API mounted in it
resets breakers into the audit trail with the token's name as actor."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI

from resilience.audit.queries import list_events
from resilience.audit.sink import DatabaseSink
from resilience.chaos import ChaosUpstream, Fault
from resilience.serving import serve_asgi
from tests.embed.app import ADMIN, KEYS, build, config
from tests.support.clock import FakeClock

ASK = {"question": "hello there"}
OPS = {"authorization": f"Bearer {ADMIN['ops']}"}
SCOPED = {"authorization": f"Bearer {ADMIN['acme-support']}"}
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; frame-ancestors 'none'",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
}


def key(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[tenant]}"}


@dataclass
class Served:
    app: FastAPI
    chaos: ChaosUpstream
    chaos_root: str
    http: httpx2.AsyncClient
    clock: FakeClock

    @property
    def sink(self) -> DatabaseSink:
        sink: DatabaseSink = self.app.state.sink
        return sink


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, database_url: str | None = None) -> AsyncIterator[Served]:
    chaos = ChaosUpstream()
    clock = FakeClock()
    url = database_url or f"sqlite:///{tmp_path / 'audit.db'}"
    async with chaos.serve() as upstream:
        app = build(config(upstream), database_url=url, spool_path=tmp_path / "spool", clock=clock)
        async with (
            serve_asgi(app, lifespan="on") as root,
            httpx2.AsyncClient(base_url=root, timeout=10) as http,
        ):
            yield Served(app, chaos, upstream, http, clock)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    async with serve(tmp_path) as running:
        yield running


async def test_the_app_answers_through_the_client_for_the_tenant_of_the_key(
    served: Served,
) -> None:
    response = await served.http.post("/v1/answer", headers=key("acme"), json=ASK)
    assert response.status_code == 200, response.text
    assert response.json()["tenant"] == "acme"
    assert response.json()["provider"] == "primary"
    assert len(response.headers["x-request-id"]) >= 1


async def test_an_outage_is_503_with_retry_after_in_the_gateways_body(served: Served) -> None:
    served.chaos.add_fault(Fault(status=503))
    response = await served.http.post(
        "/v1/answer", headers={**key("acme"), "x-request-id": "req-outage-1"}, json=ASK
    )
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers["x-should-retry"] == "false"  # the walk spent the retries
    assert response.headers["x-request-id"] == "req-outage-1"
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}  # OpenAI's four keys
    assert (error["type"], error["code"], error["param"]) == (
        "server_error",
        "all_targets_failed",
        None,
    )
    assert "chat" in error["message"]
    assert served.chaos.hit_count(upstream="primary") >= 1
    assert served.chaos.hit_count(upstream="claude") >= 1  # the route was walked


async def test_an_open_circuit_on_the_only_target_is_503_circuit_open_or_all_failed(
    served: Served,
) -> None:
    """An isolated target: nothing is called, the answer says when to come back."""
    opened = await served.http.post(
        "/admin/circuits/acme/primary/open", headers=OPS, json={"duration_s": 120}
    )
    assert opened.status_code == 200, opened.text
    response = await served.http.post(
        "/v1/answer", headers=key("acme"), json={**ASK, "route": "solo"}
    )
    assert response.status_code == 503
    assert 100 <= int(response.headers["retry-after"]) <= 120
    assert served.chaos.hit_count(upstream="primary") == 0


async def test_a_tenant_over_its_own_rpm_gets_429_as_from_the_gateway(served: Served) -> None:
    solo = {**ASK, "route": "solo"}
    first = await served.http.post("/v1/answer", headers=key("globex"), json=solo)
    assert first.status_code == 200, first.text
    limited = await served.http.post("/v1/answer", headers=key("globex"), json=solo)
    assert limited.status_code == 429, limited.text
    assert limited.headers["retry-after"] == "60"  # rpm 1: a token a minute
    assert "x-should-retry" not in limited.headers  # nothing was tried: waiting is right
    error = limited.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    served.clock.advance(60)
    again = await served.http.post("/v1/answer", headers=key("globex"), json=solo)
    assert again.status_code == 200, again.text


async def test_no_tenant_is_401_from_the_middleware_and_from_the_dependency(
    served: Served,
) -> None:
    for headers in ({}, {"authorization": "Bearer not-a-key"}):
        refused = await served.http.post("/v1/answer", headers=headers, json=ASK)
        assert refused.status_code == 401, refused.text
        assert refused.headers["www-authenticate"] == "Bearer"
        assert refused.json()["error"]["type"] == "authentication_error"
    # an exempt path: the middleware lets it through, the dependency finds no tenant
    exempt = await served.http.get("/public/whoami", headers={"x-request-id": "req-who"})
    assert exempt.status_code == 401, exempt.text
    assert exempt.headers["www-authenticate"] == "Bearer"
    assert exempt.headers["x-request-id"] == "req-who"
    assert exempt.json() == {
        "error": {
            "message": "the request names no tenant",
            "type": "authentication_error",
            "param": None,
            "code": "missing_tenant",
        }
    }
    assert served.chaos.hit_count() == 0


async def test_the_docs_load_without_a_key_and_list_the_bearer_scheme(served: Served) -> None:
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect", "/openapi.json"):
        response = await served.http.get(path)
        assert response.status_code == 200, (path, response.text)
    document: dict[str, Any] = (await served.http.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["TenantApiKey"]["type"] == "http"
    assert schemes["TenantApiKey"]["scheme"] == "bearer"
    assert document["paths"]["/v1/answer"]["post"]["security"] == [{"TenantApiKey": []}]
    assert "/admin/circuits" not in document["paths"]  # the mounted admin API is its own app


async def test_the_mounted_admin_api_guards_every_path_and_serves_the_dashboard(
    served: Served,
) -> None:
    for path in ("/admin/", "/admin/dashboard.js", "/admin/dashboard.css"):
        page = await served.http.get(path)
        assert page.status_code == 200, path
        assert all(page.headers[k] == v for k, v in SECURITY_HEADERS.items()), path
    answers = set()
    for method, path in [
        ("GET", "/admin/circuits"),
        ("POST", "/admin/circuits/acme/primary/reset"),
        ("GET", "/admin/no-such-route"),
        ("POST", "/admin/"),
    ]:
        refused = await served.http.request(method, path, headers=key("acme"))
        assert refused.status_code == 401, (method, path)
        assert all(refused.headers[k] == v for k, v in SECURITY_HEADERS.items())
        answers.add(refused.text)
    assert len(answers) == 1
    missing = await served.http.get("/admin/no-such-route", headers=OPS)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "not_found"
    forbidden = await served.http.post("/admin/circuits/globex/primary/reset", headers=SCOPED)
    assert forbidden.status_code == 403
    providers = await served.http.get("/admin/providers", headers=OPS)
    assert providers.status_code == 200
    assert set(providers.json()["bulkheads"]) == {"primary", "claude"}


@pytest.mark.postgres
async def test_a_reset_through_the_mounted_admin_api_is_audited_with_the_token_name(
    tmp_path: Path, db_url: str
) -> None:
    async with serve(tmp_path, db_url) as served:
        opened = await served.http.post(
            "/admin/circuits/acme/primary/open",
            headers=SCOPED,
            json={"reason": "key rotation"},
        )
        assert opened.status_code == 200, opened.text
        moved = await served.http.post("/v1/answer", headers=key("acme"), json=ASK)
        assert moved.json()["provider"] == "claude"  # primary isolated: the route falls back
        reset = await served.http.post(
            "/admin/circuits/acme/primary/reset", headers=OPS, json={"reason": "rotated"}
        )
        assert reset.status_code == 200, reset.text
        assert reset.json()["state"] == "closed"
        back = await served.http.post("/v1/answer", headers=key("acme"), json=ASK)
        assert back.json()["provider"] == "primary"
        await served.sink.aclose()  # flush, then read the trail through the mounted API
        await served.sink.start()
        listed = await served.http.get("/admin/events?tenant=acme", headers=OPS)
        assert listed.status_code == 200, listed.text
        events = listed.json()["events"]
        assert [(e["reason"], e["actor"]) for e in events] == [
            ("admin_reset", "ops"),
            ("admin_open", "acme-support"),
        ]
        assert events[0]["detail"] == {"note": "rotated"}
        engine = served.app.state.engine
        async with engine.connect() as conn:
            rows = (await list_events(conn, tenant="acme", limit=10)).events
        assert [(r.reason, r.actor, r.to_state) for r in rows] == [
            ("admin_reset", "ops", "closed"),
            ("admin_open", "acme-support", "forced_open"),
        ]


async def test_the_lifespan_starts_and_closes_the_client_and_the_sink(tmp_path: Path) -> None:
    """Entering starts the breaker store's sweep and the audit writer; leaving stops both,
    after the writer flushed what it held (the isolation below is in the database)."""

    def running() -> set[str]:
        names = {"resilience-sweep", "resilience-audit-writer"}
        return {t.get_name() for t in asyncio.all_tasks() if not t.done()} & names

    assert running() == set()
    async with serve(tmp_path) as served:
        assert running() == {"resilience-sweep", "resilience-audit-writer"}
        opened = await served.http.post("/admin/circuits/acme/primary/open", headers=OPS)
        assert opened.status_code == 200
        app, sink = served.app, served.sink
    assert running() == set()
    assert sink.stats.received == 1 and sink.stats.written == 1 and sink.stats.spooled == 0
    async with serve(tmp_path) as served:  # the same database: the row is there
        listed = await served.http.get("/admin/events", headers=OPS)
        assert [e["actor"] for e in listed.json()["events"]] == ["ops"]
    assert app.state.client is not served.app.state.client
