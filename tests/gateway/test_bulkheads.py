"""Bulkheads in the gateway over real sockets: a tenant at its own `max_concurrent` gets 429
`concurrency_limit_exceeded` with Retry-After while another tenant is served, and the gates
show in `/metrics` and `/admin/providers`.

uvicorn runs the gateway (lifespan on) and the chaos upstream, both on loopback; the SDKs
call them over HTTP. The slow call is held by a `Latch` until the test opens it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from resilience.breaker.events import BreakerState
from resilience.chaos import ChaosUpstream, Fault
from resilience.config.load import parse_config
from resilience.gateway.factory import Gateway, create_app
from resilience.gateway.settings import Settings
from resilience.routing.bulkhead import Refusal
from resilience.serving import serve_asgi
from resilience.tenancy.resolvers import hash_key
from tests.client.test_bulkheads import GUARD_S, Latch
from tests.support.gateway import ADMIN, KEYS
from tests.support.servers import until

MESSAGES: Any = [{"role": "user", "content": "hello"}]
ENVIRON = {"UPSTREAM_KEY": "upstream-secret-key"}


def config(upstream: str) -> dict[str, Any]:
    """acme may have one call at a time at `primary`; globex has the `[bulkhead]` default."""
    tenants: dict[str, Any] = {t: {"api_key_sha256": [hash_key(k)]} for t, k in KEYS.items()}
    tenants["acme"]["providers"] = {"primary": {"max_concurrent": 1}}
    return {
        "retry": {"max_attempts": 2, "base_delay_s": 0.001, "max_delay_s": 0.002},
        "providers": {
            "primary": {
                "kind": "openai",
                "api_key_env": "UPSTREAM_KEY",
                "base_url": f"{upstream}/primary/v1",
                "timeout_s": GUARD_S,
            },
            "claude": {
                "kind": "anthropic",
                "api_key_env": "UPSTREAM_KEY",
                "base_url": f"{upstream}/claude",
            },
        },
        "routes": {
            "solo": {"targets": ["primary:gpt-4.1"]},
            "chat": {"targets": ["primary:gpt-4.1", "claude:claude-sonnet-4-6"]},
        },
        "tenants": tenants,
        "admin": {"tokens": {"ops": {"token_sha256": hash_key(ADMIN["ops"])}}},
    }


@contextlib.asynccontextmanager
async def gateway_on(chaos: ChaosUpstream, tmp_path: Path) -> AsyncIterator[tuple[str, Gateway]]:
    async with chaos.serve() as upstream:
        settings = Settings(
            config=parse_config(config(upstream), environ=ENVIRON),
            database_url=f"sqlite+aiosqlite:///{tmp_path / 'audit.db'}",
            spool_path=tmp_path / "spool.jsonl",
            environ=ENVIRON,
        )
        app = create_app(settings)
        async with serve_asgi(app, lifespan="on") as root:
            yield root, app.state.gateway


def sdk(root: str, tenant: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        api_key=KEYS[tenant], base_url=f"{root}/v1", max_retries=0, timeout=GUARD_S
    )


async def test_a_tenant_at_its_own_cap_gets_429_while_another_tenant_is_served(
    tmp_path: Path,
) -> None:
    latch = Latch()
    chaos = ChaosUpstream(sleep=latch.sleep)
    chaos.add_fault(Fault(latency_s=4.0), upstream="primary", times=1)  # acme's first call
    async with gateway_on(chaos, tmp_path) as (root, gateway), asyncio.timeout(GUARD_S):
        acme, globex = sdk(root, "acme"), sdk(root, "globex")
        held = asyncio.create_task(acme.chat.completions.create(model="solo", messages=MESSAGES))
        await latch.until_held(1)

        with pytest.raises(openai.RateLimitError) as refused:
            await acme.chat.completions.create(model="solo", messages=MESSAGES)
        served = await globex.chat.completions.create(model="solo", messages=MESSAGES)
        fell_back = await acme.chat.completions.with_raw_response.create(
            model="chat", messages=MESSAGES
        )

        response = refused.value.response
        assert response.status_code == 429
        assert refused.value.code == "concurrency_limit_exceeded"
        assert int(response.headers["retry-after"]) >= 1
        assert served.choices[0].message.content
        # on a route with somewhere else to go, the cap is a skip, not a refusal
        assert fell_back.headers["x-resilience-provider"] == "claude"
        assert fell_back.headers["x-resilience-skipped"] == "primary:gpt-4.1=bulkhead_full"

        async with httpx2.AsyncClient(base_url=root) as http:
            metrics = (await http.get("/metrics")).text
            admin = (await http.get("/admin/providers", headers=admin_auth())).json()
        latch.open()
        answered = await held
        await acme.close()
        await globex.close()
    assert answered.choices[0].message.content
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    limits = {s.labels["provider"]: s.value for s in families["resilience_bulkhead_limit"].samples}
    assert limits == {"primary": 20.0, "claude": 20.0}
    in_flight = families["resilience_bulkhead_in_flight"].samples
    assert {s.labels["provider"]: s.value for s in in_flight}["primary"] == 1.0
    refusals = {
        (s.labels["provider"], s.labels["reason"]): s.value
        for s in families["resilience_bulkhead_refused"].samples
        if s.name.endswith("_total")
    }
    assert refusals[("primary", "tenant_limit")] == 2.0
    primary = admin["bulkheads"]["primary"]
    assert (primary["limit"], primary["in_flight"], primary["waiting"]) == (20, 1, 0)
    assert primary["refused"] == {"tenant_limit": 2, "provider_limit": 0}
    breaker = gateway.client.registry.get("acme", "primary")
    assert breaker.state is BreakerState.CLOSED and breaker.failures_in_window() == 0
    assert chaos.hit_count(upstream="primary") == 2  # acme's held call and globex's


def admin_auth() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN['ops']}"}


async def test_a_stream_the_caller_leaves_gives_its_slot_back(tmp_path: Path) -> None:
    """A stream holds its slot while it runs; a caller going away mid-stream ends it, and
    the tenant at its cap of 1 is served again."""
    latch = Latch()
    chaos = ChaosUpstream(sleep=latch.sleep)
    chaos.add_fault(Fault(chunk_delay_s=1.0), upstream="primary", times=1)  # stalls after one
    body = {"model": "solo", "stream": True, "messages": MESSAGES}
    async with gateway_on(chaos, tmp_path) as (root, gateway), asyncio.timeout(GUARD_S):
        gates = gateway.client.bulkheads
        assert gates is not None
        primary = gates.gate("primary")
        async with (
            httpx2.AsyncClient(base_url=root) as http,
            http.stream("POST", "/v1/chat/completions", json=body, headers=bearer("acme")) as sse,
        ):
            assert sse.status_code == 200
            async for line in sse.aiter_lines():
                if line.startswith("data:"):
                    break  # the caller goes away after the first frame
            assert primary.in_flight_of("acme") == 1
        await until(lambda: primary.in_flight == 0, timeout_s=GUARD_S)
        acme = sdk(root, "acme")
        again = await acme.chat.completions.create(model="solo", messages=MESSAGES)
        await acme.close()
        latch.open()
    assert again.choices[0].message.content
    assert primary.refused[Refusal.TENANT_LIMIT] == 0


def bearer(tenant: str) -> dict[str, str]:
    return {"authorization": f"Bearer {KEYS[tenant]}"}
