"""Real gateway processes on the memory store, restarted on the same audit database:
an admin isolation survives SIGTERM and `kill -9`, and afterwards `breaker_open_periods`
shows open exactly what the live process holds."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from sqlalchemy import text

from resilience.audit.database import create_engine
from tests.support.load import LoadPlan, Run
from tests.support.processes import Process

ADMIN = {"authorization": "Bearer load-admin"}
ISOLATED = ("t9", "primary")
TRIPPED = [f"t{i}" for i in range(4)]


def key(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer load-key-{tenant.removeprefix('t')}"}


def ask(model: str) -> dict[str, object]:
    return {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 30.0) -> None:
    """Poll what another process does in its own time (the audit writer's batches)."""
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout_s} s")
        await asyncio.sleep(0.1)


@asynccontextmanager
async def gateway_and_upstream(tmp_path: Path) -> AsyncIterator[tuple[Run, Process]]:
    run = Run(LoadPlan(clients=1, duration_s=1, tenants=10), tmp_path)
    chaos = run.chaos()
    await chaos.start()
    gateway = run.gateway()
    try:
        await run.wait_up(f"{run.upstream}/_chaos/faults")
        await gateway.start()
        await run.wait_up(f"{run.root}/healthz")
        yield run, gateway
    finally:
        if gateway.proc is not None:
            await gateway.stop(signal.SIGKILL)
        await chaos.stop()


async def restart(run: Run, gateway: Process, sig: int) -> None:
    await gateway.stop(sig)
    await gateway.start()
    await run.wait_up(f"{run.root}/healthz")


async def isolate(http: httpx.AsyncClient) -> None:
    tenant, provider = ISOLATED
    opened = await http.post(
        f"/admin/circuits/{tenant}/{provider}/open", json={"reason": "isolated"}, headers=ADMIN
    )
    assert opened.status_code == 200 and opened.json()["state"] == "forced_open"


async def assert_isolated(http: httpx.AsyncClient) -> None:
    tenant, provider = ISOLATED
    shown = (await http.get(f"/admin/circuits/{tenant}/{provider}", headers=ADMIN)).json()
    assert shown["state"] == "forced_open" and shown["retry_at"] is None
    refused = await http.post(
        "/v1/chat/completions", json=ask("primary:gpt-4.1"), headers=key(tenant)
    )
    assert refused.status_code == 503  # the isolated target is not called
    served = await http.post("/v1/chat/completions", json=ask("chat"), headers=key(tenant))
    assert served.status_code == 200  # the route falls back to the other provider


async def live_not_closed(http: httpx.AsyncClient) -> set[tuple[str, str]]:
    circuits = (await http.get("/admin/circuits", headers=ADMIN)).json()["circuits"]
    return {(c["tenant"], c["provider"]) for c in circuits if c["state"] != "closed"}


async def open_in_view(database_url: str) -> set[tuple[str, str]]:
    engine = create_engine(database_url)
    try:
        async with engine.connect() as conn:
            found = await conn.execute(
                text("SELECT tenant_id, provider FROM breaker_open_periods WHERE closed_at IS NULL")
            )
            return {(r[0], r[1]) for r in found}
    finally:
        await engine.dispose()


async def test_an_admin_isolation_survives_sigterm_and_restart(tmp_path: Path) -> None:
    async with (
        gateway_and_upstream(tmp_path) as (run, gateway),
        httpx.AsyncClient(base_url=run.root, timeout=30) as http,
    ):
        await isolate(http)
        await assert_isolated(http)
        await restart(run, gateway, signal.SIGTERM)
        await assert_isolated(http)
        assert await live_not_closed(http) == {ISOLATED}
        assert await open_in_view(run.env["DATABASE_URL"]) == {ISOLATED}


async def test_after_kill_9_the_view_holds_open_only_what_the_live_process_holds(
    tmp_path: Path,
) -> None:
    async with (
        gateway_and_upstream(tmp_path) as (run, gateway),
        httpx.AsyncClient(base_url=run.root, timeout=30) as http,
    ):
        database = run.env["DATABASE_URL"]
        failing = {"fault": {"status": 500}, "upstream": "primary"}
        (await http.post(f"{run.upstream}/_chaos/faults", json=failing)).raise_for_status()
        await isolate(http)
        for tenant in TRIPPED:  # each request fails twice (retried) on primary
            for _ in range(5):
                await http.post(
                    "/v1/chat/completions", json=ask("primary:gpt-4.1"), headers=key(tenant)
                )
        tripped = await live_not_closed(http) - {ISOLATED}
        assert len(tripped) >= 2  # tenants' breakers, and maybe the provider-wide one

        async def trail_has_them() -> bool:
            return tripped | {ISOLATED} <= await open_in_view(database)

        await eventually(trail_has_them)  # written, so the crash cannot take them along
        await restart(run, gateway, signal.SIGKILL)
        await assert_isolated(http)

        async def view_matches_live() -> bool:
            return await open_in_view(database) == await live_not_closed(http)

        await eventually(view_matches_live)
        assert await live_not_closed(http) == {ISOLATED}
