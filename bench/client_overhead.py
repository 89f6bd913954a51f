"""Per-call overhead of `ResilientClient.complete` over a bare SDK call, in one run.

Usage: python bench/client_overhead.py [--quick]

Both sides call the same in-process chaos upstream (an httpx2 ASGI transport)
through the real `openai` SDK with `max_retries=0`; ours adds the tenant's
breaker, the retry machinery, the route walk and the normalisation both ways.
Blocks of calls alternate between the two so drift on the machine hits both
alike; the figure is the median per-call time over all blocks.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx2
import openai

from resilience.chaos import ChaosUpstream
from resilience.client.resilient import ResilientClient
from resilience.models import ChatRequest, Message
from resilience.providers.openai import OpenAIProvider
from resilience.providers.settings import ProviderSettings

QUICK = "--quick" in sys.argv
BLOCKS = 4 if QUICK else 20
PER_BLOCK = 25 if QUICK else 100
ROOT = "http://chaos"


async def timed_block(call: Callable[[], Awaitable[object]], n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        await call()
        times.append(time.perf_counter() - start)
    return times


async def main() -> None:
    chaos = ChaosUpstream()
    http = httpx2.AsyncClient(transport=chaos.transport())
    bare = openai.AsyncOpenAI(
        api_key="k", base_url=f"{ROOT}/primary/v1", max_retries=0, http_client=http
    )
    settings = ProviderSettings(kind="openai", api_key="k", base_url=f"{ROOT}/primary/v1")
    provider = OpenAIProvider("primary", settings, http_client=http)
    client = ResilientClient(providers={"primary": provider})
    request = ChatRequest(messages=(Message(role="user", content="hello"),), max_tokens=16)

    async def call_bare() -> object:
        return await bare.chat.completions.create(
            model="gpt-4.1", messages=[{"role": "user", "content": "hello"}], max_tokens=16
        )

    async def call_ours() -> object:
        return await client.complete(request, route="primary:gpt-4.1", tenant="bench")

    for call in (call_bare, call_ours):  # warm-up: imports, pools, caches
        await timed_block(call, 50)
    bare_times: list[float] = []
    ours_times: list[float] = []
    for block in range(BLOCKS):
        order = (call_bare, call_ours) if block % 2 == 0 else (call_ours, call_bare)
        for call in order:
            sink = bare_times if call is call_bare else ours_times
            sink.extend(await timed_block(call, PER_BLOCK))
    await http.aclose()

    bare_us = statistics.median(bare_times) * 1e6
    ours_us = statistics.median(ours_times) * 1e6
    print(f"{len(bare_times)} calls each, {BLOCKS} interleaved blocks, in-process chaos upstream")
    print(f"bare openai SDK call:    median {bare_us:8.1f} us")
    print(f"ResilientClient.complete: median {ours_us:8.1f} us")
    print(f"added per call:           {ours_us - bare_us:8.1f} us")
    print(f"bare_sdk_us: {bare_us:.1f}")
    print(f"resilient_client_us: {ours_us:.1f}")
    print(f"ratio_vs_bare_sdk: {ours_us / bare_us:.3f}")


if __name__ == "__main__":
    asyncio.run(main())
