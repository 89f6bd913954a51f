"""tpm at the gateway: a tenant over its own tokens per minute gets 429 with Retry-After
while the other tenants on the same key are served; and two gateway processes on Redis
hold one shared bucket between them."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import pytest

from resilience.chaos import ChaosUpstream
from resilience.config.load import parse_config
from resilience.gateway.factory import create_app
from resilience.gateway.settings import Settings
from resilience.tenancy.resolvers import hash_key
from tests.support.clock import FakeClock
from tests.support.processes import Process, free_port, wait_up

KEYS = {"big": "gw-key-big", **{f"t{i}": f"gw-key-t{i}" for i in range(4)}}
BIG = {"model": "solo", "messages": [{"role": "user", "content": "abc " * 1000}]}
"""An estimate of 1,001 tokens (4,004 characters); the upstream reports 1,000 in."""
SMALL = {"model": "solo", "messages": [{"role": "user", "content": "hello"}]}


def config(root: str, own_tpm: float) -> dict[str, Any]:
    return {
        "retry": {"max_attempts": 1},
        "providers": {
            "primary": {
                "kind": "openai",
                "api_key_env": "UPSTREAM_KEY",
                "base_url": f"{root}/primary/v1",
                "tpm": 1_000_000,
            }
        },
        "routes": {"solo": {"targets": ["primary:gpt-4.1"]}},
        "tenants": {
            tenant: {
                "api_key_sha256": [hash_key(key)],
                **({"providers": {"primary": {"tpm": own_tpm}}} if tenant == "big" else {}),
            }
            for tenant, key in KEYS.items()
        },
    }


def auth(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[tenant]}"}


@pytest.fixture
async def gateway(
    tmp_path: Path,
) -> AsyncIterator[tuple[httpx2.AsyncClient, ChaosUpstream, FakeClock]]:
    clock = FakeClock()
    chaos = ChaosUpstream()
    environ = {"UPSTREAM_KEY": "upstream-secret-key"}
    async with chaos.serve() as root:
        settings = Settings(
            config=parse_config(config(root, 2500), environ=environ),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
            spool_path=tmp_path / "spool.jsonl",
            environ=environ,
            clock=clock,
        )
        app = create_app(settings)
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://gateway") as http:
                yield http, chaos, clock


async def test_a_tenant_over_its_own_tpm_gets_429_and_the_others_are_served(
    gateway: tuple[httpx2.AsyncClient, ChaosUpstream, FakeClock],
) -> None:
    http, chaos, clock = gateway

    async def post(tenant: str, body: dict[str, Any]) -> httpx2.Response:
        return await http.post("/v1/chat/completions", json=body, headers=auth(tenant))

    answers = await asyncio.gather(
        *(post("big", BIG) for _ in range(10)), *(post(f"t{i % 4}", SMALL) for i in range(40))
    )
    big, small = answers[:10], answers[10:]
    assert sorted(r.status_code for r in big) == [200] * 2 + [429] * 8  # 2,500 a minute
    assert all(r.status_code == 200 for r in small)
    refused = next(r for r in big if r.status_code == 429)
    error = refused.json()["error"]
    assert (error["type"], error["code"]) == ("rate_limit_error", "rate_limit_exceeded")
    assert "big" in error["message"] and "primary: 2500 tokens per minute" in error["message"]
    # what is left after two calls charged what they reported, until 1,001 are back
    retry_after = int(refused.headers["retry-after"])
    assert 10 <= retry_after <= 25
    assert chaos.hit_count(upstream="primary") == 2 + 40
    page = (await http.get("/metrics")).text
    assert 'resilience_token_limit_skips_total{provider="primary"} 8.0' in page
    clock.advance(retry_after)
    assert (await post("big", BIG)).status_code == 200


def process_config(upstream: str, own_tpm: float) -> str:
    return f"""
[server]
tenant_from = "header"

[retry]
max_attempts = 1

[providers.primary]
kind = "openai"
api_key_env = "UPSTREAM_KEY"
base_url = "{upstream}/primary/v1"
tpm = 1000000

[routes.chat]
targets = ["primary:gpt-4.1"]

[tenants.big.providers.primary]
tpm = {own_tpm}
"""


@pytest.mark.redis
async def test_two_gateway_processes_hold_one_shared_bucket(
    tmp_path: Path, redis_url: str, prefix: str
) -> None:
    """4,500 a minute admits four calls of 1,001 and then about 7.6 s of nothing: each
    process alone would admit four."""
    chaos = ChaosUpstream()
    async with chaos.serve() as upstream:
        (tmp_path / "gateway.toml").write_text(process_config(upstream, 4500))
        roots = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
        env = {
            **os.environ,
            "UPSTREAM_KEY": "upstream-secret-key",
            "RESILIENCE_CONFIG": str(tmp_path / "gateway.toml"),
            "REDIS_URL": redis_url,
            "REDIS_PREFIX": prefix,
        }
        gateways = [
            Process(
                f"gateway-{i}",
                [sys.executable, "-m", "resilience.cli", "serve", "--port", root.rsplit(":", 1)[1]],
                {
                    **env,
                    "DATABASE_URL": f"sqlite:///{tmp_path / f'audit-{i}.db'}",
                    "RESILIENCE_SPOOL": str(tmp_path / f"spool-{i}.jsonl"),
                },
                tmp_path / f"gateway-{i}.log",
            )
            for i, root in enumerate(roots)
        ]
        for process in gateways:
            await process.start()
        try:
            await asyncio.gather(*(wait_up(root + "/healthz") for root in roots))
            async with httpx2.AsyncClient(timeout=30) as http:

                async def post(i: int, tenant: str, body: dict[str, Any]) -> int:
                    response = await http.post(
                        roots[i % 2] + "/v1/chat/completions",
                        json={**body, "model": "chat"},
                        headers={"x-tenant-id": tenant},
                    )
                    return response.status_code

                statuses = await asyncio.gather(
                    *(post(i, "big", BIG) for i in range(30)),
                    *(post(i, f"small-{i % 4}", SMALL) for i in range(40)),
                )
        finally:
            for process in gateways:
                await process.stop()
    big, small = statuses[:30], statuses[30:]
    assert set(small) == {200}
    assert set(big) == {200, 429}
    assert 4 <= big.count(200) <= 5  # not eight: the processes share the bucket
    assert chaos.hit_count(upstream="primary") == big.count(200) + 40  # the rest: no call
