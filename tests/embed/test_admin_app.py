"""`admin_app(...)` mounted anywhere, built from a client object rather than the gateway's
config: the routes answer relative to the mount, the dashboard calls the API relative to
itself (in Chromium), the audit listings say why they cannot answer without a database,
resets reach the client's own audit sinks, and tokens can be swapped."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2
from playwright.async_api import async_playwright
from starlette.applications import Starlette
from starlette.routing import Mount

from resilience.breaker.events import BreakerState, TransitionReason
from resilience.client.resilient import ResilientClient
from resilience.config.schema import AdminToken
from resilience.embed import admin_app
from resilience.embed.admin import replace_tokens
from resilience.serving import serve_asgi
from resilience.tenancy.resolvers import hash_key
from tests.support.browser import FLAGS
from tests.support.client import CHAT, Harness

TOKENS = {
    "ops": AdminToken(name="ops", token_sha256=hash_key("ops-secret")),
    "acme-desk": AdminToken(name="acme-desk", token_sha256=hash_key("acme-secret"), tenant="acme"),
}
OPS = {"authorization": "Bearer ops-secret"}


@contextlib.asynccontextmanager
async def mounted(*, dashboard: bool = True) -> AsyncIterator[tuple[Harness, httpx2.AsyncClient]]:
    """The admin API at `/ops` of a plain Starlette app, on a client made in code."""
    async with contextlib.AsyncExitStack() as stack:
        harness = Harness(stack)
        client: ResilientClient = await harness.client()
        await stack.enter_async_context(client)
        app = Starlette(
            routes=[Mount("/ops", app=admin_app(client, tokens=TOKENS, dashboard=dashboard))]
        )
        transport = httpx2.ASGITransport(app=app)
        http = await stack.enter_async_context(
            httpx2.AsyncClient(transport=transport, base_url="http://app")
        )
        yield harness, http


async def test_the_routes_answer_relative_to_any_mount_point() -> None:
    async with mounted() as (_, http):
        listed = await http.get("/ops/circuits", headers=OPS)
        assert listed.status_code == 200 and listed.json() == {"circuits": []}
        opened = await http.post("/ops/circuits/acme/primary/open", headers=OPS, json={})
        assert opened.status_code == 200, opened.text
        assert opened.json()["state"] == "forced_open"
        page = await http.get("/ops/")
        assert page.status_code == 200 and "dashboard.js" in page.text
        assert (await http.get("/admin/circuits", headers=OPS)).status_code == 404


async def test_resets_reach_the_clients_own_audit_sinks_with_the_token_name() -> None:
    async with mounted() as (harness, http):
        await http.post("/ops/circuits/acme/primary/open", headers=OPS, json={"reason": "rotation"})
        await http.post(
            "/ops/circuits/acme/primary/reset",
            headers={"authorization": "Bearer acme-secret"},
            json={},
        )
        moves = [(e.reason, e.actor, e.to_state) for e in harness.sink.events]
        assert moves == [
            (TransitionReason.ADMIN_OPEN, "ops", BreakerState.FORCED_OPEN),
            (TransitionReason.ADMIN_RESET, "acme-desk", BreakerState.CLOSED),
        ]


async def test_without_an_audit_database_the_listings_say_so_after_the_token_check() -> None:
    async with mounted() as (_, http):
        for path in (
            "/ops/events",
            "/ops/summary?since=2026-01-01T00:00:00Z&until=2026-02-01T00:00:00Z",
        ):
            assert (await http.get(path)).status_code == 401
            response = await http.get(path, headers=OPS)
            assert response.status_code == 503, path
            error = response.json()["error"]
            assert (error["type"], error["code"]) == ("server_error", "audit_unavailable")
            assert "engine" in error["message"]
        scoped = await http.get("/ops/summary", headers={"authorization": "Bearer acme-secret"})
        assert scoped.status_code == 403  # an unrestricted listing: the scope is checked first


async def test_without_the_dashboard_its_files_are_not_public() -> None:
    async with mounted(dashboard=False) as (_, http):
        for path in ("/ops/", "/ops/dashboard.js"):
            assert (await http.get(path)).status_code == 401
            missing = await http.get(path, headers=OPS)
            assert missing.status_code == 404
            assert missing.json()["error"]["code"] == "not_found"


async def test_replaced_tokens_apply_to_the_next_request() -> None:
    harness_app = admin_app(lambda: _never(), tokens=TOKENS)
    transport = httpx2.ASGITransport(app=Starlette(routes=[Mount("/admin", app=harness_app)]))
    async with httpx2.AsyncClient(transport=transport, base_url="http://app") as http:
        replace_tokens(harness_app, {"new": AdminToken(name="new", token_sha256=hash_key("n"))})
        assert (await http.get("/admin/events", headers=OPS)).status_code == 401
        answered = await http.get("/admin/events", headers={"authorization": "Bearer n"})
        assert answered.status_code == 503  # the new token is in; no database here


async def test_requests_racing_a_token_swap_each_see_one_whole_set() -> None:
    """400 concurrent requests, the tokens swapped once 100 were answered: each is answered
    by the old set (200 for ops) or the new one (401 for ops), never an error."""
    async with contextlib.AsyncExitStack() as stack:
        client = await Harness(stack).client()
        await stack.enter_async_context(client)
        admin = admin_app(client, tokens=TOKENS)
        transport = httpx2.ASGITransport(app=Starlette(routes=[Mount("/admin", app=admin)]))
        http = await stack.enter_async_context(
            httpx2.AsyncClient(transport=transport, base_url="http://app")
        )
        answered: list[int] = []
        hundred = asyncio.Event()

        async def ask() -> None:
            answered.append((await http.get("/admin/circuits", headers=OPS)).status_code)
            if len(answered) == 100:
                hundred.set()

        async def swap() -> None:
            await hundred.wait()
            replace_tokens(admin, {"new": AdminToken(name="new", token_sha256=hash_key("n"))})

        await asyncio.gather(swap(), *(ask() for _ in range(400)))
        assert len(answered) == 400
        assert set(answered) <= {200, 401}
        assert answered[:100] == [200] * 100
        await ask()
        assert answered[-1] == 401


def _never() -> ResilientClient:
    raise AssertionError("the client is not asked for before a route needs it")


async def test_the_dashboard_works_under_another_mount_point(chromium: str, tmp_path: Path) -> None:
    """At `/ops/`, without an audit database: the grid and the reset work, the timeline
    says why it is empty."""
    async with contextlib.AsyncExitStack() as stack:
        harness = Harness(stack)
        client = await harness.client(served=True)
        await stack.enter_async_context(client)
        await client.complete(CHAT, route="chat", tenant="acme")
        await client.registry.aforce_open("acme", "primary", actor="test")
        app = Starlette(routes=[Mount("/ops", app=admin_app(client, tokens=TOKENS))])
        root = await stack.enter_async_context(serve_asgi(app))
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=chromium, args=FLAGS)
            page = await browser.new_page()
            await page.goto(f"{root}/ops/")
            await page.fill("#token", "ops-secret")
            await page.dispatch_event("#token", "change")
            cell = page.locator('td[data-tenant="acme"][data-provider="primary"]')
            await cell.locator(".state.forced_open").wait_for(timeout=10_000)
            note = page.locator("#timeline li", has_text="no audit database")
            await note.first.wait_for(timeout=10_000)
            async with page.expect_response(lambda r: r.url.endswith("/reset")) as answer:
                await cell.locator('button[data-action="reset"]').click()
            reset = await answer.value
            assert reset.status == 200
            assert reset.url == f"{root}/ops/circuits/acme/primary/reset"
            await cell.locator(".state.closed").wait_for(timeout=10_000)
            await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
            await browser.close()
        assert client.registry.get("acme", "primary").state is BreakerState.CLOSED
