"""The real SDKs aimed at a chaos upstream, in-process or over a loopback socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from resilience.chaos import ChaosUpstream
from tests.fakes import FakeClock

PROMPT = "hello big world"
ANSWER = "ok: hello big world (answered by chaos)"
ANSWER_WORDS = ["ok: ", "hello ", "big ", "world ", "(answered ", "by ", "chaos)"]
MESSAGES: Any = [{"role": "user", "content": PROMPT}]


@dataclass
class Upstream:
    """One chaos upstream, the fake clock that times it, and an HTTP client that reaches it."""

    chaos: ChaosUpstream
    clock: FakeClock
    root: str
    http: httpx2.AsyncClient

    def anthropic(
        self, upstream: str = "u", *, key: str = "k", timeout: float = 5.0
    ) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=key,
            base_url=f"{self.root}/{upstream}",
            max_retries=0,
            timeout=timeout,
            http_client=self.http,
        )

    def openai(
        self, upstream: str = "u", *, key: str = "k", timeout: float = 5.0
    ) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(
            api_key=key,
            base_url=f"{self.root}/{upstream}/v1",
            max_retries=0,
            timeout=timeout,
            http_client=self.http,
        )


@pytest.fixture
async def inproc() -> AsyncIterator[Upstream]:
    """In-process over `chaos.transport()`; latency and chunk delays go to a fake clock."""
    clock = FakeClock()
    chaos = ChaosUpstream(clock=clock, sleep=clock.sleep)
    async with httpx2.AsyncClient(transport=chaos.transport()) as http:
        yield Upstream(chaos, clock, "http://chaos", http)


@pytest.fixture(params=["in-process", "socket"])
async def either(request: pytest.FixtureRequest) -> AsyncIterator[Upstream]:
    """The same upstream in-process and over a real loopback socket (`chaos.serve()`)."""
    clock = FakeClock()
    chaos = ChaosUpstream(clock=clock, sleep=clock.sleep)
    if request.param == "in-process":
        async with httpx2.AsyncClient(transport=chaos.transport()) as http:
            yield Upstream(chaos, clock, "http://chaos", http)
    else:
        async with chaos.serve() as root, httpx2.AsyncClient() as http:
            yield Upstream(chaos, clock, root, http)
