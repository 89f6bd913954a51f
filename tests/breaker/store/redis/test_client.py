"""Two `ResilientClient`s sharing a Redis store, through the real SDKs to one chaos upstream."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import httpx2
import pytest

from resilience.breaker.events import MemorySink, TransitionReason
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from resilience.chaos import ChaosUpstream, Fault
from resilience.client.resilient import ResilientClient
from resilience.models import ChatRequest, Message
from resilience.retry import RetryPolicy
from resilience.routing.routes import Route
from tests.support.client import providers_for

pytestmark = pytest.mark.redis

CHAT = ChatRequest(messages=(Message(role="user", content="hi"),), max_tokens=8)
ROUTES = {"chat": Route.of("chat", "primary:gpt-4.1", "fallback:claude-sonnet-4-6")}


class Pair:
    def __init__(
        self, chaos: ChaosUpstream, clients: list[ResilientClient], sinks: list[MemorySink]
    ):
        self.chaos, self.clients, self.sinks = chaos, clients, sinks

    def hits(self) -> Counter[str]:
        return Counter(hit.upstream for hit in self.chaos.hits)

    async def call(self, i: int) -> str:
        result = await self.clients[i % 2].complete(CHAT, route="chat", tenant="acme")
        return result.target.provider


@pytest.fixture
async def pair(redis_url: str, prefix: str) -> AsyncIterator[Pair]:
    chaos = ChaosUpstream()
    async with AsyncExitStack() as stack:
        clients, sinks = [], []
        for _ in range(2):
            http = httpx2.AsyncClient(transport=chaos.transport())
            stack.push_async_callback(http.aclose)
            sink = MemorySink()
            registry = BreakerRegistry(
                policy=BreakerPolicy(provider_wide_min_tenants=0),
                sinks=[sink],
                redis_url=redis_url,
                redis_prefix=prefix,
            )
            client = ResilientClient(
                providers=providers_for("http://chaos", http, 5.0),
                routes=ROUTES,
                registry=registry,
                retry=RetryPolicy(max_attempts=1),
                rpm={"primary": 60},
            )
            await client.start()
            stack.push_async_callback(client.aclose)
            clients.append(client)
            sinks.append(sink)
        yield Pair(chaos, clients, sinks)


async def test_a_dead_primary_is_left_by_both_clients_after_one_shared_trip(pair: Pair) -> None:
    pair.chaos.add_fault(Fault(status=503), upstream="primary")
    served = [await pair.call(i) for i in range(40)]
    assert set(served) == {"fallback"}  # every caller was served
    for client in pair.clients:
        await client.registry.store.flush()  # type: ignore[attr-defined]
    assert 5 <= pair.hits()["primary"] <= 6  # 5 to trip; one may pass before the news
    reasons = [e.reason for sink in pair.sinks for e in sink.events]
    assert reasons == [TransitionReason.THRESHOLD]


async def test_an_rpm_limit_is_one_bucket_for_both_clients(pair: Pair) -> None:
    served = Counter([await pair.call(i) for i in range(100)])
    # 60 a minute between them (one more may refill while this runs), the rest falls back
    assert 60 <= served["primary"] <= 61
    assert served["primary"] + served["fallback"] == 100
    assert pair.hits() == served
