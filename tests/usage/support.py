"""A recording usage sink, and a client on the chaos upstream that has one."""

from __future__ import annotations

from contextlib import AsyncExitStack

import httpx2

from resilience.breaker.registry import BreakerRegistry
from resilience.chaos import ChaosUpstream
from resilience.client.resilient import ResilientClient
from resilience.retry import RetryPolicy
from resilience.usage.record import UsageRecord
from tests.support.client import DEFAULT_ROUTES, providers_for, route
from tests.support.clock import FakeClock


class RecordingSink:
    """Keeps every usage record it is given, in order."""

    def __init__(self) -> None:
        self.records: list[UsageRecord] = []

    def emit_usage(self, record: UsageRecord) -> None:
        self.records.append(record)


ROUTES = {
    **DEFAULT_ROUTES,
    "openai": route("openai", "primary:gpt-4.1"),
    "claude": route("claude", "fallback:claude-x"),
    "both": route("both", "primary:gpt-4.1", "fallback:claude-x"),
}


async def usage_client(
    stack: AsyncExitStack,
    chaos: ChaosUpstream,
    *sinks: object,
    clock: FakeClock | None = None,
    served: bool = False,
    retry: RetryPolicy | None = None,
) -> ResilientClient:
    """A client on `chaos` through the real SDKs whose usage records go to `sinks`."""
    if served:
        root = await stack.enter_async_context(chaos.serve())
        http = httpx2.AsyncClient()
    else:
        root, http = "http://chaos", httpx2.AsyncClient(transport=chaos.transport())
    stack.push_async_callback(http.aclose)
    fake = clock or FakeClock()
    client = ResilientClient(
        providers=providers_for(root, http, 5.0),
        routes=ROUTES,
        registry=BreakerRegistry(clock=fake, wall_clock=fake.wall),
        retry=retry or RetryPolicy(max_attempts=1),
        clock=fake,
        sleep=fake.sleep,
        usage_sinks=sinks,  # type: ignore[arg-type]
    )
    stack.push_async_callback(client.aclose)
    return client
