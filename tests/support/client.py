"""A ResilientClient wired to the chaos upstream through the real SDKs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import replace
from typing import TypeVar

import httpx2

from resilience.breaker.events import MemorySink
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from resilience.chaos import ChaosUpstream
from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.client.streaming import ResilientStream
from resilience.errors import ProviderError
from resilience.models import ChatRequest, Message
from resilience.providers.anthropic import AnthropicProvider
from resilience.providers.base import Provider
from resilience.providers.limits import DEFAULT_MAX_RESPONSE_BYTES
from resilience.providers.openai import OpenAIProvider
from resilience.providers.settings import ProviderSettings
from resilience.retry import RetryPolicy
from resilience.routing.bulkhead import BulkheadPolicy, Bulkheads
from resilience.routing.routes import Route, Target
from resilience.types import Clock, Sleep
from tests.support.clock import FakeClock

ItemT = TypeVar("ItemT")


async def drain(stream: ResilientStream[ItemT]) -> tuple[list[ItemT], ProviderError | None]:
    """Every item of `stream`, and the error that ended it, if one did (the items that came
    before it kept)."""
    items: list[ItemT] = []
    try:
        async for item in stream:
            items.append(item)  # noqa: PERF401 - keep the items that came before an error
    except ProviderError as exc:
        return items, exc
    return items, None


CHAT = ChatRequest(messages=(Message(role="user", content="hello there"),), max_tokens=64)


def route(name: str, *targets: str) -> Route:
    return Route(name=name, targets=tuple(Target.parse(t) for t in targets))


class Harness:
    """Builds clients on one chaos upstream, one fake clock and one audit sink."""

    def __init__(self, stack: AsyncExitStack) -> None:
        self.chaos = ChaosUpstream()
        self.clock = FakeClock()
        self.sink = MemorySink()
        self._stack = stack

    async def client(
        self,
        *,
        served: bool = False,
        routes: Mapping[str, Route] | None = None,
        tenants: Mapping[str, TenantPolicy] | None = None,
        retry: RetryPolicy | None = None,
        breaker: BreakerPolicy | None = None,
        timeout_s: float = 5.0,
        real_time: bool = False,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        bulkhead: BulkheadPolicy | None = None,
    ) -> ResilientClient:
        if served:
            root = await self._stack.enter_async_context(self.chaos.serve())
            http = httpx2.AsyncClient()
        else:
            root, http = "http://chaos", httpx2.AsyncClient(transport=self.chaos.transport())
        self._stack.push_async_callback(http.aclose)
        registry = BreakerRegistry(
            policy=breaker or BreakerPolicy(),
            sinks=[self.sink],
            clock=self.clock,
            wall_clock=self.clock.wall,
        )
        clock: Clock = time.monotonic if real_time else self.clock
        sleep: Sleep = asyncio.sleep if real_time else self.clock.sleep
        return ResilientClient(
            providers=providers_for(root, http, timeout_s, max_response_bytes),
            routes=routes or DEFAULT_ROUTES,
            tenants=tenants,
            registry=registry,
            retry=retry or RetryPolicy(),
            clock=clock,
            sleep=sleep,
            bulkheads=Bulkheads(bulkhead, clock=clock) if bulkhead is not None else None,
        )


def providers_for(
    root: str,
    http: httpx2.AsyncClient,
    timeout_s: float,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> dict[str, Provider]:
    common = ProviderSettings(
        kind="openai",
        api_key="shared-key",
        timeout_s=timeout_s,
        max_response_bytes=max_response_bytes,
    )
    return {
        "primary": OpenAIProvider(
            "primary", replace(common, base_url=f"{root}/primary/v1"), http_client=http
        ),
        "fallback": AnthropicProvider(
            "fallback",
            replace(common, kind="anthropic", base_url=f"{root}/fallback"),
            http_client=http,
        ),
        "local": OpenAIProvider(
            "local",
            replace(common, api_key=None, base_url=f"{root}/local/v1", location="local"),
            http_client=http,
        ),
    }


DEFAULT_ROUTES = {"chat": route("chat", "primary:gpt-4.1", "fallback:claude-x")}
