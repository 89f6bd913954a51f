"""What callers name (models, header-mode tenants) never grows the gateway without bound, and
no label value breaks monitoring (findings 2, 6 and part of 9)."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import httpx2
import pytest
from prometheus_client.parser import text_string_to_metric_families

from resilience.chaos import ChaosUpstream, Fault
from resilience.config.load import parse_config
from resilience.config.schema import ConfigError
from resilience.gateway.factory import Gateway, create_app
from resilience.routing.health import MAX_TARGETS
from resilience.routing.routes import Target
from resilience.serving import serve_asgi
from resilience.tenancy.resolvers import hash_key
from tests.support.clock import FakeClock
from tests.support.gateway import ADMIN, settings_for

MAX_TENANTS = 40
METRICS_TOKEN = "metrics-scraper-token"
OPS = {"authorization": f"Bearer {ADMIN['ops']}"}


@dataclass
class Served:
    http: httpx2.AsyncClient
    chaos: ChaosUpstream
    gateway: Gateway
    clock: FakeClock


@contextlib.asynccontextmanager
async def serve(tmp_path: Path, **server: Any) -> AsyncIterator[Served]:
    """The gateway in header mode under uvicorn on a loopback socket, on a chaos upstream,
    its client on a fake clock."""
    chaos = ChaosUpstream()
    clock = FakeClock()
    async with chaos.serve() as root:
        settings = settings_for(root, tmp_path)
        config = settings.config
        config = replace(config, server=replace(config.server, tenant_from="header", **server))
        config = replace(config, retry=replace(config.retry, max_attempts=1))
        app = create_app(replace(settings, config=config, clock=clock))
        async with (
            serve_asgi(app, lifespan="on") as gateway_root,
            httpx2.AsyncClient(base_url=gateway_root) as http,
        ):
            yield Served(http, chaos, app.state.gateway, clock)


def chat(http: httpx2.AsyncClient, tenant: str, model: str) -> Awaitable[httpx2.Response]:
    return http.post(
        "/v1/chat/completions",
        headers={"x-tenant-id": tenant},
        json={"model": model, "messages": [{"role": "user", "content": "hi"}]},
    )


def samples(page: str) -> list[tuple[str, dict[str, str]]]:
    return [(s.name, s.labels) for f in text_string_to_metric_families(page) for s in f.samples]


async def monitoring(http: httpx2.AsyncClient) -> tuple[str, list[dict[str, Any]]]:
    """`/metrics` and `/admin/providers` (asserted 200), `/admin/circuits` answering too."""
    metrics = await http.get("/metrics")
    providers = await http.get("/admin/providers", headers=OPS)
    circuits = await http.get("/admin/circuits", headers=OPS)
    assert (metrics.status_code, providers.status_code, circuits.status_code) == (200, 200, 200)
    return metrics.text, providers.json()["providers"]


async def test_random_models_and_tenants_stay_under_the_caps(tmp_path: Path) -> None:
    async with serve(tmp_path, metrics_max_tenants=MAX_TENANTS) as s:
        flood = 700  # per phase; two phases name more models than the board holds

        async def phase(status: int) -> None:
            for start in range(0, flood, 50):
                batch = [
                    chat(s.http, f"t-{uuid.uuid4().hex[:12]}", f"primary:m-{uuid.uuid4().hex}")
                    for _ in range(start, min(start + 50, flood))
                ]
                answers = await asyncio.gather(*batch)
                assert {a.status_code for a in answers} == {status}, [
                    a.text for a in answers if a.status_code != status
                ][:3]

        await phase(200)  # the upstream answers any model
        s.chaos.add_fault(None, model="gpt-4.1")
        s.chaos.add_fault(Fault(status=404))  # then only its real one
        await phase(404)
        assert (await chat(s.http, "acme", "chat")).status_code == 200

        page, rows = await monitoring(s.http)
        assert len(rows) <= MAX_TARGETS
        assert "gpt-4.1" in {r["model"] for r in rows}  # the model in use was kept
        series = samples(page)
        models = {
            (labels["provider"], labels["model"]) for _, labels in series if "model" in labels
        }
        assert len(models) <= MAX_TARGETS
        tenants = {labels["tenant"] for _, labels in series if "tenant" in labels}
        # the listed tenant keeps its label; callers' tenants share one past the cap
        assert "acme" in tenants and "_other" in tenants
        assert len(tenants) <= MAX_TENANTS + 1 + 2  # the cap, `_other`, the listed tenants
        # unbounded, two phases of 700 models and tenants came to over 12,000 series
        assert len(series) < MAX_TARGETS * 5 + 1_000


async def test_a_lone_surrogate_label_breaks_neither_metrics_nor_admin(tmp_path: Path) -> None:
    async with serve(tmp_path) as s:
        client = s.gateway.client
        # the gateway refuses such names up front; the library is reached directly here
        target = object.__new__(Target)
        object.__setattr__(target, "provider", "primary")
        object.__setattr__(target, "model", "x\udc80")
        member = client.health.member(target)
        member.failed(member.started(), counts=True)
        metrics = s.gateway.metrics
        assert metrics is not None
        metrics.requests.labels("t\udc80", "primary", "ok").inc()  # a counter label too
        page, rows = await monitoring(s.http)
        assert "x\\udc80" in {r["model"] for r in rows}
        labels = [labels for _, labels in samples(page)]
        assert {"provider": "primary", "model": "x\\udc80"} in [
            {k: lab[k] for k in ("provider", "model")} for lab in labels if "model" in lab
        ]
        assert "t\\udc80" in {lab.get("tenant") for lab in labels}


async def test_idle_breakers_leave_the_listing_on_time_and_open_ones_stay(tmp_path: Path) -> None:
    ttl = 300.0  # the registry's default idle time
    async with serve(tmp_path) as s:
        assert (await chat(s.http, "quiet", "primary:gpt-4.1")).status_code == 200
        s.chaos.add_fault(Fault(status=500), upstream="primary")
        for _ in range(5):
            await chat(s.http, "broken", "primary:gpt-4.1")
        s.chaos.clear_faults()
        locked = await s.http.post("/admin/circuits/locked/primary/open", headers=OPS, json={})
        assert locked.status_code == 200

        async def listed() -> dict[str, str]:
            answer = await s.http.get("/admin/circuits", headers=OPS)
            assert answer.status_code == 200
            return {
                c["tenant"]: c["state"] for c in answer.json()["circuits"] if c["tenant"] != "*"
            }

        assert (await listed()).keys() == {"quiet", "broken", "locked"}
        for _ in range(2):  # no request in between: no new pair is created
            s.clock.advance(ttl + 1)
            await listed()
        assert await listed() == {"broken": "half_open", "locked": "forced_open"}


async def test_a_metrics_token_is_required_once_configured(tmp_path: Path) -> None:
    async with serve(tmp_path, metrics_token_sha256=hash_key(METRICS_TOKEN)) as s:
        assert (await s.http.get("/metrics")).status_code == 401
        wrong = await s.http.get("/metrics", headers={"authorization": "Bearer nope"})
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
        admin = await s.http.get("/metrics", headers=OPS)  # an admin token is not this token
        assert admin.status_code == 401
        right = await s.http.get("/metrics", headers={"authorization": f"Bearer {METRICS_TOKEN}"})
        assert right.status_code == 200 and "resilience_breakers" in right.text


@pytest.mark.parametrize(
    ("server", "error"),
    [
        (
            {"metrics_token_sha256": METRICS_TOKEN},
            "server.metrics_token_sha256: expected 64 hex characters (a SHA-256 digest)",
        ),
        (
            {"metrics_max_tenants": -1},
            "server.metrics_max_tenants: must be an integer >= 0, got -1",
        ),
        (
            {"metrics_max_tenants": 1.5},
            "server.metrics_max_tenants: expected an integer, got 1.5",
        ),
    ],
)
def test_metrics_settings_are_checked_where_they_are_written(
    server: dict[str, Any], error: str
) -> None:
    data = {"server": server, "providers": {"p": {"kind": "openai"}}}
    with pytest.raises(ConfigError) as raised:
        parse_config(data, environ={})
    assert str(raised.value) == error
    assert METRICS_TOKEN not in str(raised.value)
