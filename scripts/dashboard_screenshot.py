"""Render docs/dashboard.png: the gateway with a few tenants in every state, in headless Chromium.

Usage: .venv/bin/python scripts/dashboard_screenshot.py
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from resilience.chaos import ChaosUpstream, Fault  # noqa: E402
from resilience.errors import ErrorKind  # noqa: E402
from resilience.gateway.factory import create_app  # noqa: E402
from resilience.serving import serve_asgi  # noqa: E402
from tests.client.conftest import CHAT  # noqa: E402
from tests.gateway.conftest import ADMIN, settings_for  # noqa: E402
from tests.gateway.test_dashboard import CHROMIUM, FLAGS  # noqa: E402


async def main() -> None:
    chaos = ChaosUpstream()
    with tempfile.TemporaryDirectory() as tmp:
        async with chaos.serve() as upstream:
            app = create_app(settings_for(upstream, Path(tmp)))
            async with serve_asgi(app, lifespan="on") as root:
                client = app.state.gateway.client
                registry = client.registry
                chaos.add_fault(Fault(latency_s=0.03), upstream="primary")
                chaos.add_fault(Fault(latency_s=0.06), upstream="claude")
                for tenant in ("acme", "globex", "initech", "umbrella"):  # health figures
                    for target in ("primary:gpt-4.1", "claude:claude-sonnet-4-6"):
                        for _ in range(3):
                            await client.complete(CHAT, route=target, tenant=tenant)
                chaos.clear_faults()
                for tenant in ("acme", "globex", "initech", "umbrella"):
                    for provider in ("primary", "claude"):
                        registry.get(tenant, provider)
                breaker = registry.get("globex", "primary")
                for _ in range(5):
                    breaker.record_failure(breaker.acquire(), ErrorKind.AUTH)
                limited = registry.get("initech", "primary")
                limited.record_failure(limited.acquire(), ErrorKind.RATE_LIMITED, retry_after_s=5)
                await registry.aforce_open("umbrella", "claude", actor="ops", note="abuse review")
                chaos.add_fault(Fault(status=503), upstream="primary")
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                    page = await browser.new_page(viewport={"width": 1000, "height": 760})
                    await page.goto(f"{root}/admin/")
                    await page.fill("#token", ADMIN["ops"])
                    await page.dispatch_event("#token", "change")
                    await page.locator(".state.forced_open").wait_for()
                    await page.locator("#timeline li").nth(2).wait_for(timeout=10_000)
                    await page.locator("#health tbody tr").nth(1).wait_for(timeout=10_000)
                    await page.screenshot(path=str(ROOT / "docs" / "dashboard.png"), full_page=True)
                    await browser.close()
    print("wrote docs/dashboard.png")


if __name__ == "__main__":
    asyncio.run(main())
