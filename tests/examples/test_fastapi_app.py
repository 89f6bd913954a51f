"""The README's FastAPI example (examples/fastapi_app/app.py), run as its users run it.

uvicorn serves the app in a process of its own on a loopback socket; its tenants table and
audit trail are in a PostgreSQL database of the test's own (`pg_url`: a fresh database,
dropped afterwards, so tests running at once never share a table); its providers are the
chaos upstream, served by this test on a real socket. The tenant cache's TTL is set small
through `TENANT_TTL_S`, the variable the app reads: a change to the table shows within it,
and the tests poll for it under a guard instead of timing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import sys
import textwrap
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx2
import pytest

from resilience.chaos import ChaosUpstream, Fault
from resilience.config.load import load_config
from tests.support.load import LOG_ALARMS
from tests.support.processes import free_port
from tests.test_readme_blocks import FASTAPI_SECTION, README, python_blocks

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "fastapi_app" / "app.py"
TTL_S = 0.3
"""The tenant cache's TTL in the app (`TENANT_TTL_S`)."""
GUARD_S = 30.0
"""How long a poll may wait for what the TTL promises before the test fails."""
ADMIN_TOKEN = "ops-admin-token"
ANSWER = "ok: hello (answered by chaos)"


def sha256(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def example_config(root: str) -> str:
    """The app's TOML (`RESILIENCE_CONFIG`): two providers on the chaos upstream."""
    return textwrap.dedent(
        f"""
        [breaker]
        failure_threshold = 2
        cooldown_s = 60

        [retry]
        max_attempts = 1

        [providers.openai]
        kind = "openai"
        api_key_env = "CHAOS_API_KEY"
        base_url = "{root}/openai/v1"

        [providers.anthropic]
        kind = "anthropic"
        api_key_env = "CHAOS_API_KEY"
        base_url = "{root}/anthropic"

        [routes.chat]
        targets = ["openai:gpt-4.1", "anthropic:claude-sonnet-4-6"]

        [admin.tokens.ops]
        token_sha256 = "{sha256(ADMIN_TOKEN)}"
        """
    )


@dataclass
class Example:
    """The running app, its database and its upstream."""

    http: httpx2.AsyncClient
    chaos: ChaosUpstream
    db: asyncpg.Connection
    log: Path

    async def ask(self, key: str | None, question: str = "hello") -> httpx2.Response:
        headers = {"authorization": f"Bearer {key}"} if key is not None else {}
        return await self.http.post("/ask", json={"question": question}, headers=headers)

    async def add_tenant(self, tenant: str, key: str, rpm: float | None = None) -> None:
        await self.db.execute(
            "INSERT INTO tenants (tenant_id, key_sha256, rpm) VALUES ($1, $2, $3)",
            tenant,
            sha256(key),
            rpm,
        )

    async def served(self, key: str) -> httpx2.Response:
        """The first answer that is not a 401, once the row is seen (within the TTL)."""
        return await poll(lambda: self.ask(key), lambda r: r.status_code != 401)

    def admin(self) -> dict[str, str]:
        return {"authorization": f"Bearer {ADMIN_TOKEN}"}


async def poll(
    get: Callable[[], Awaitable[httpx2.Response]],
    done: Callable[[httpx2.Response], bool],
) -> httpx2.Response:
    """`get()` until `done(answer)`; fails after GUARD_S (a guard, not a timing claim)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD_S
    while True:
        answer = await get()
        if done(answer):
            return answer
        if loop.time() > deadline:
            raise AssertionError(f"still {answer.status_code} after {GUARD_S} s: {answer.text}")
        await asyncio.sleep(TTL_S / 10)


async def started(http: httpx2.AsyncClient, process: asyncio.subprocess.Process, log: Path) -> None:
    """Wait until the app answers `/openapi.json` (exempt from the middleware)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while loop.time() < deadline:
        if process.returncode is not None:
            break
        with contextlib.suppress(httpx2.TransportError):
            if (await http.get("/openapi.json")).status_code == 200:
                return
        await asyncio.sleep(0.1)
    output = await asyncio.to_thread(log.read_text)
    raise AssertionError(f"the example app did not start:\n{output}")


@pytest.fixture
async def example(pg_url: str, tmp_path: Path) -> AsyncIterator[Example]:
    chaos = ChaosUpstream()
    async with chaos.serve() as root:
        config = tmp_path / "resilience.toml"
        config.write_text(example_config(root))
        ours = ("RESILIENCE_", "REDIS_", "DATABASE_URL", "TENANT_TTL_S")
        env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
        env.update(
            RESILIENCE_CONFIG=str(config),
            DATABASE_URL=pg_url,
            TENANT_TTL_S=str(TTL_S),
            RESILIENCE_SPOOL=str(tmp_path / "audit-spool.jsonl"),
            CHAOS_API_KEY="chaos-key",
            PYTHONUNBUFFERED="1",
        )
        port = free_port()
        log = tmp_path / "app.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "uvicorn",
                "examples.fastapi_app.app:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=out,
            )
        try:
            async with httpx2.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                await started(http, process, log)
                db = await asyncpg.connect(pg_url)
                try:
                    yield Example(http, chaos, db, log)
                finally:
                    await db.close()
        finally:
            if process.returncode is None:
                process.terminate()
                try:
                    await asyncio.wait_for(process.wait(), 20)
                except TimeoutError:
                    process.kill()
                    await process.wait()
    output = await asyncio.to_thread(log.read_text)
    assert not [alarm for alarm in LOG_ALARMS if alarm in output], output


async def test_a_tenant_added_to_the_table_is_served_and_a_deleted_key_refused(
    example: Example,
) -> None:
    key = "acme-gateway-key"
    refused = await example.ask(key)  # not in the table yet (the miss is cached too)
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == "invalid_api_key"
    assert (await example.ask(None)).status_code == 401
    # the documentation loads without a key and offers the bearer scheme under "Authorize"
    assert (await example.http.get("/docs")).status_code == 200
    document = (await example.http.get("/openapi.json")).json()
    [scheme] = document["components"]["securitySchemes"].values()
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    assert document["paths"]["/ask"]["post"]["security"], document["paths"]["/ask"]

    await example.add_tenant("acme", key)
    answer = await example.served(key)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"tenant": "acme", "answer": ANSWER, "by": "openai:gpt-4.1"}

    await example.db.execute("DELETE FROM tenants WHERE tenant_id = 'acme'")
    gone = await poll(lambda: example.ask(key), lambda r: r.status_code != 200)
    assert gone.status_code == 401, gone.text
    assert gone.json()["error"]["code"] == "invalid_api_key"


async def test_a_tenants_own_rpm_from_the_table_gives_429(example: Example) -> None:
    await example.add_tenant("globex", "globex-gateway-key", rpm=1)
    await example.add_tenant("initech", "initech-gateway-key")
    # one request a minute to each provider: the first is openai's, the second anthropic's
    first = await example.served("globex-gateway-key")
    second = await example.ask("globex-gateway-key")
    third = await example.ask("globex-gateway-key")
    assert [r.status_code for r in (first, second, third)] == [200, 200, 429], third.text
    assert second.json()["by"] == "anthropic:claude-sonnet-4-6"
    assert third.json()["error"]["code"] == "rate_limit_exceeded"
    assert int(third.headers["retry-after"]) >= 1
    other = await example.served("initech-gateway-key")  # a tenant without a limit of its own
    assert other.status_code == 200, other.text


async def test_an_outage_answers_503_with_retry_after(example: Example) -> None:
    await example.add_tenant("acme", "acme-gateway-key")
    assert (await example.served("acme-gateway-key")).status_code == 200
    example.chaos.add_fault(Fault(status=503))  # every target, every request
    hits = example.chaos.hit_count()
    answers = [await example.ask("acme-gateway-key") for _ in range(4)]
    for answer in answers:  # tried (two failures each), then refused by the open breakers
        assert answer.status_code == 503, answer.text
        assert int(answer.headers["retry-after"]) >= 1
        assert answer.headers["x-should-retry"] == "false"
        assert answer.headers["x-request-id"]
        error = answer.json()["error"]
        assert (error["type"], error["code"]) == ("server_error", "all_targets_failed")
        assert set(error) == {"message", "type", "param", "code"}
    assert example.chaos.hit_count() - hits == 4  # failure_threshold 2, on both providers
    # once both breakers are open, Retry-After is the time until the first may be probed
    assert int(answers[-1].headers["retry-after"]) > 1


async def breaker_state(example: Example, tenant: str, provider: str) -> str:
    answer = await example.http.get(f"/admin/circuits/{tenant}/{provider}", headers=example.admin())
    assert answer.status_code == 200, answer.text
    state: str = answer.json()["state"]
    return state


async def test_a_reset_through_the_mounted_admin_api_is_audited_with_its_actor(
    example: Example,
) -> None:
    await example.add_tenant("acme", "acme-gateway-key")
    assert (await example.served("acme-gateway-key")).status_code == 200
    assert (await example.http.get("/admin/circuits")).status_code == 401  # no token
    dashboard = await example.http.get("/admin/")
    assert dashboard.status_code == 200 and "text/html" in dashboard.headers["content-type"]

    example.chaos.add_fault(Fault(status=503), upstream="openai")
    for _ in range(2):  # failure_threshold 2: openai's breaker opens, anthropic answers
        answer = await example.ask("acme-gateway-key")
        assert answer.json()["by"] == "anthropic:claude-sonnet-4-6", answer.text
    assert await breaker_state(example, "acme", "openai") == "open"

    example.chaos.clear_faults()
    reset = await example.http.post(
        "/admin/circuits/acme/openai/reset", json={"reason": "key rotated"}, headers=example.admin()
    )
    assert reset.status_code == 200, reset.text
    assert await breaker_state(example, "acme", "openai") == "closed"
    answer = await example.ask("acme-gateway-key")
    assert answer.json()["by"] == "openai:gpt-4.1", answer.text

    rows = await audit_rows(example, "admin_reset")
    assert [(r["tenant_id"], r["provider"], r["actor"]) for r in rows] == [
        ("acme", "openai", "ops")
    ]
    [opened] = await audit_rows(example, "threshold")
    assert (opened["tenant_id"], opened["provider"], opened["actor"]) == ("acme", "openai", None)
    # the mounted admin API reads the same trail
    events = await example.http.get(
        "/admin/events", params={"tenant": "acme"}, headers=example.admin()
    )
    assert events.status_code == 200, events.text
    assert "ops" in {e["actor"] for e in events.json()["events"]}, events.text


async def audit_rows(example: Example, reason: str) -> list[Any]:
    """The `breaker_events` rows of `reason`, once the audit sink has written them."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + GUARD_S
    query = "SELECT * FROM breaker_events WHERE reason = $1 ORDER BY occurred_at"
    while not (rows := await example.db.fetch(query, reason)):
        if loop.time() > deadline:
            raise AssertionError(f"no {reason} row in breaker_events after {GUARD_S} s")
        await asyncio.sleep(0.05)
    return list(rows)


def test_the_readme_fastapi_block_is_the_example_app() -> None:
    """The README's complete FastAPI example and examples/fastapi_app/app.py are one text:
    this file's tests run the app, so they check the README's block too."""
    blocks = [b for b in python_blocks(README.read_text()) if b.section == FASTAPI_SECTION]
    assert len(blocks) == 1, f"expected one Python block under '## {FASTAPI_SECTION}'"
    assert blocks[0].source == APP.read_text(), (
        "README.md's FastAPI block and examples/fastapi_app/app.py differ: copy one to the other"
    )


def test_the_example_config_loads_with_the_route_and_token_the_app_uses() -> None:
    """examples/fastapi_app/resilience.toml, the file its README runs the app with."""
    environ = {"ANTHROPIC_API_KEY": "a-key", "OPENAI_API_KEY": "o-key"}
    config = load_config(APP.parent / "resilience.toml", environ=environ)
    assert "chat" in config.routes
    assert config.admin_tokens["ops"].token_sha256 == sha256("ops-example-token")
