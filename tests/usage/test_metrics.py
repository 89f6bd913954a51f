"""`resilience_tokens_total`: the tokens providers reported, by tenant, provider and kind,
in one process and summed across `resilience serve --workers N`."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from pathlib import Path

import httpx2

from resilience.chaos import ChaosUpstream
from resilience.gateway.metrics import GatewayMetrics, render
from resilience.usage.record import UsageRecord
from tests.gateway.test_metrics_workers import CHAT, KEY, gateway, samples, scrape


def _record(
    tenant: str, provider: str | None, i: int | None, o: int | None, c: int | None
) -> UsageRecord:
    return UsageRecord(
        id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        tenant_id=tenant,
        route="chat",
        provider=provider,
        model="m",
        input_tokens=i,
        output_tokens=o,
        cached_tokens=c,
        latency_ms=1.0,
        outcome="succeeded",
        request_id=None,
        streamed=False,
    )


async def test_tokens_are_counted_by_kind_and_unknown_counts_add_nothing() -> None:
    metrics = GatewayMetrics(lambda: None, lambda: None, known_tenants=["acme"])
    metrics.emit_usage(_record("acme", "primary", 10, 5, 4))
    metrics.emit_usage(_record("acme", "primary", 1, 2, None))
    metrics.emit_usage(_record("acme", None, None, None, None))  # a failed call: nothing
    page = render(metrics.registry).decode()
    found = samples(page, "resilience_tokens_total")
    acme = (("kind", "{}"), ("provider", "primary"), ("tenant", "acme"))
    assert found == {
        tuple((k, v.format(kind) if k == "kind" else v) for k, v in acme): n
        for kind, n in (("input", 11), ("output", 7), ("cached", 4))
    }


async def test_without_tenant_labels_the_label_is_empty() -> None:
    metrics = GatewayMetrics(lambda: None, lambda: None, tenant_label=False)
    metrics.emit_usage(_record("acme", "primary", 3, 0, 0))
    page = render(metrics.registry).decode()
    assert samples(page, "resilience_tokens_total") == {
        (("kind", "input"), ("provider", "primary"), ("tenant", "")): 3
    }


async def test_every_workers_tokens_are_on_every_page(tmp_path: Path) -> None:
    async with ChaosUpstream().serve() as upstream, gateway(tmp_path, upstream, 2) as served:
        gate = asyncio.Semaphore(20)

        async def one() -> dict[str, int]:
            async with gate, httpx2.AsyncClient() as http:
                response = await http.post(
                    f"{served.root}/v1/chat/completions",
                    json=CHAT,
                    headers={"authorization": f"Bearer {KEY}"},
                    timeout=30,
                )
            assert response.status_code == 200, response.text
            usage: dict[str, int] = response.json()["usage"]
            return usage

        answered = await asyncio.gather(*(one() for _ in range(100)))
        want = {
            "input": sum(u["prompt_tokens"] for u in answered),
            "output": sum(u["completion_tokens"] for u in answered),
        }
        for _ in range(6):  # whichever worker answers, the page has both workers' tokens
            page = await scrape(served.root)
            found = samples(page, "resilience_tokens_total")
            assert {dict(k)["kind"]: v for k, v in found.items()} == want, found
            assert {dict(k)["tenant"] for k in found} == {"acme"}
