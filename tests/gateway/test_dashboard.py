"""The dashboard in a real headless Chromium (Debian's), against the gateway under uvicorn."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import async_playwright

from resilience.chaos import ChaosUpstream
from resilience.gateway.factory import create_app
from resilience.serving import serve_asgi
from tests.support.browser import FLAGS
from tests.support.client import CHAT
from tests.support.gateway import ADMIN, settings_for


async def test_dashboard_renders_the_grid_and_reset_works(chromium: str, tmp_path: Path) -> None:
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        app = create_app(settings_for(upstream, tmp_path))
        async with serve_asgi(app, lifespan="on") as root:
            registry = app.state.gateway.client.registry
            registry.get("globex", "claude")
            gateway_client = app.state.gateway.client
            await gateway_client.complete(CHAT, route="chat", tenant="acme")
            await registry.aforce_open("acme", "primary", actor="test")
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=chromium, args=FLAGS)
                page = await browser.new_page()
                await page.goto(f"{root}/admin/")
                await page.fill("#token", ADMIN["ops"])
                await page.dispatch_event("#token", "change")
                opened = page.locator('td[data-tenant="acme"][data-provider="primary"]')
                await opened.locator(".state.forced_open").wait_for(timeout=10_000)
                closed = page.locator(
                    'td[data-tenant="globex"][data-provider="claude"] .state.closed'
                )
                await closed.wait_for(timeout=10_000)
                health = page.locator('#health tbody tr[data-provider="primary"]')
                await health.wait_for(timeout=10_000)
                assert "gpt-4.1" in await health.inner_text()
                headers = await page.locator("#grid thead th").all_inner_texts()
                assert headers[0] == "tenant" and {"claude", "primary"} <= set(headers)
                await page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)
                reset = opened.locator('button[data-action="reset"]')
                async with page.expect_response(lambda r: r.url.endswith("/reset")) as answer:
                    await reset.click()
                assert (await answer.value).status == 200
                await opened.locator(".state.closed").wait_for(timeout=10_000)
                timeline = page.locator("#timeline li", has_text="admin_reset by ops")
                await timeline.first.wait_for(timeout=10_000)
                await browser.close()
            assert str(registry.get("acme", "primary").state) == "closed"
