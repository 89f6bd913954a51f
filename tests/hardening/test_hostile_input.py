"""Hostile input against the gateway, and secrets that must never leak (bounded form of issue 9)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
import pytest

from resilience.chaos import ChaosUpstream, Fault
from resilience.config.load import parse_config
from resilience.gateway.factory import create_app
from resilience.tenancy.resolvers import hash_key
from tests.support.gateway import ADMIN, KEYS, admin_config, chaos_providers, settings_for

UPSTREAM_SECRET = "sk-upstream-SECRET-0123456789"
TENANT_SECRET = "tenant-own-SECRET-9876543210"


@pytest.fixture
async def gateway(tmp_path: Path) -> AsyncIterator[tuple[httpx2.AsyncClient, ChaosUpstream]]:
    chaos = ChaosUpstream()
    async with chaos.serve() as root:
        settings = settings_for(root, tmp_path)
        environ = {"UPSTREAM_KEY": UPSTREAM_SECRET, "ACME_OWN_KEY": TENANT_SECRET}
        data = {
            "retry": {"max_attempts": 1},
            "providers": chaos_providers(root),
            "routes": {"chat": {"targets": ["primary:gpt-4.1", "claude:claude-sonnet-4-6"]}},
            "tenants": {
                "acme": {
                    "api_key_sha256": [hash_key(KEYS["acme"])],
                    "providers": {"primary": {"api_key_env": "ACME_OWN_KEY"}},
                },
                "globex": {"api_key_sha256": [hash_key(KEYS["globex"])]},
            },
            "admin": admin_config(ADMIN),
        }
        from dataclasses import replace

        settings = replace(settings, config=parse_config(data, environ=environ), environ=environ)
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                yield http, chaos


async def test_provider_keys_never_appear_in_answers_logs_metrics_audit_or_dashboard(
    gateway: tuple[httpx2.AsyncClient, ChaosUpstream], caplog: pytest.LogCaptureFixture
) -> None:
    http, chaos = gateway
    caplog.set_level(logging.DEBUG)
    # upstreams that echo the key they were given, as real ones do in 401 messages
    chaos.add_fault(
        Fault(status=401, message=f"Incorrect API key provided: {TENANT_SECRET}"),
        api_key=TENANT_SECRET,
    )
    chaos.add_fault(
        Fault(status=400, message=f"bad request for key {UPSTREAM_SECRET}"), upstream="claude"
    )
    acme = {"authorization": f"Bearer {KEYS['acme']}"}
    ops = {"authorization": f"Bearer {ADMIN['ops']}"}
    seen: list[str] = []
    for _ in range(6):
        response = await http.post(
            "/v1/chat/completions",
            headers=acme,
            json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
        )
        seen.append(response.text)
    stream = await http.post(
        "/v1/chat/completions",
        headers=acme,
        json={
            "model": "claude:claude-sonnet-4-6",
            "stream": True,
            "messages": [{"role": "user", "content": "x"}],
        },
    )
    seen.append(stream.text)
    events: list[object] = []
    for _ in range(100):  # the audit sink writes asynchronously: wait for the rows
        events = (await http.get("/admin/events?limit=100", headers=ops)).json()["events"]
        if events:
            break
        await asyncio.sleep(0.05)
    assert events, "the revoked tenant key opened a breaker: its audit row is there"
    pages = (
        "/metrics",
        "/admin/circuits",
        "/admin/events?limit=100",
        "/admin/",
        "/readyz",
        "/openapi.json",
    )
    seen.extend([(await http.get(path, headers=ops)).text for path in pages])
    for record in caplog.records:
        seen.extend((record.getMessage(), str(record.__dict__)))
    assert any("invalid_request_error" in text or "all_targets_failed" in text for text in seen)
    for text in seen:
        assert UPSTREAM_SECRET not in text
        assert TENANT_SECRET not in text
    # the sink's rows, as SQL users read them, hold no key either
    assert chaos.hit_count(api_key=TENANT_SECRET) >= 1  # the secrets really were in play


@pytest.mark.parametrize(
    "path",
    [
        "/admin/circuits/..%2f../reset",
        "/admin/circuits/%2e%2e/primary/reset",
        "/admin/circuits/acme%2f..%2fglobex/primary/reset",
        "/admin/circuits/acme/..%2fprimary/open",
        "/admin/circuits/" + "a" * 10_000 + "/primary/open",
        "/admin/circuits/acme%00/primary/open",
    ],
)
async def test_path_tricks_in_admin_routes_are_refused_without_a_change(
    gateway: tuple[httpx2.AsyncClient, ChaosUpstream], path: str
) -> None:
    http, _ = gateway
    ops = {"authorization": f"Bearer {ADMIN['ops']}"}
    response = await http.post(path, headers=ops, json={})
    assert 400 <= response.status_code < 500
    circuits = (await http.get("/admin/circuits", headers=ops)).json()["circuits"]
    assert all(c["state"] == "closed" for c in circuits)


async def test_a_tenant_limited_token_cannot_reach_another_tenant_through_a_cursor(
    gateway: tuple[httpx2.AsyncClient, ChaosUpstream],
) -> None:
    http, _ = gateway
    ops = {"authorization": f"Bearer {ADMIN['ops']}"}
    limited = {"authorization": f"Bearer {ADMIN['acme-support']}"}
    for tenant in ("globex", "acme", "globex", "acme", "globex"):
        await http.post(f"/admin/circuits/{tenant}/primary/open", headers=ops, json={})
        await http.post(f"/admin/circuits/{tenant}/primary/reset", headers=ops, json={})
    await http.get("/readyz")
    page = {"next_cursor": None}
    for _ in range(100):  # the sink writes asynchronously: wait until the rows are there
        page = (await http.get("/admin/events?limit=3", headers=ops)).json()
        if page["next_cursor"]:
            break
        await asyncio.sleep(0.05)
    cursor = page["next_cursor"]
    assert cursor, "ops sees more than one page across tenants"
    mine = (await http.get(f"/admin/events?limit=100&cursor={cursor}", headers=limited)).json()
    assert mine["events"] and {e["tenant_id"] for e in mine["events"]} == {"acme"}
    other = await http.get(f"/admin/events?tenant=globex&cursor={cursor}", headers=limited)
    assert other.status_code == 403
    forged = await http.get("/admin/events?cursor=eyJ0IjoiLi4uIn0", headers=limited)
    assert forged.status_code == 400


@pytest.mark.parametrize(
    "tenant_header",
    ["acme\r\nx-admin: yes", "a" * 10_240, "ac\u0430me", "../../etc/passwd", "%00acme"],
)
async def test_hostile_tenant_headers_in_header_mode_are_refused(
    tmp_path: Path, tenant_header: str
) -> None:
    chaos = ChaosUpstream()
    async with chaos.serve() as root:
        from dataclasses import replace

        settings = settings_for(root, tmp_path)
        header_mode = replace(
            settings.config, server=replace(settings.config.server, tenant_from="header")
        )
        app = create_app(replace(settings, config=header_mode))
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                raw = tenant_header.encode("utf-8", "surrogatepass")
                response = await http.post(
                    "/v1/chat/completions",
                    headers=[(b"x-tenant-id", raw)],
                    json={"model": "chat", "messages": [{"role": "user", "content": "x"}]},
                )
    assert response.status_code == 400
    assert chaos.hit_count() == 0
