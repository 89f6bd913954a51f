"""The chaos upstream reached in-process or over a socket, and what it answers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import anthropic
import httpx2
import openai

from resilience.chaos import ChaosUpstream
from tests.support.clock import FakeClock

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
