"""Provider adapters against a recording or canned upstream."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import httpx2

from resilience.providers.anthropic import AnthropicProvider
from resilience.providers.openai import OpenAIProvider
from resilience.providers.settings import Location, ProviderSettings

Kind = Literal["anthropic", "openai"]


KINDS: tuple[Kind, ...] = ("anthropic", "openai")


@dataclass
class Sent:
    url: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class Upstream:
    root: str
    http: httpx2.AsyncClient
    sent: list[Sent] = field(default_factory=list)

    def provider(
        self,
        kind: Kind,
        name: str = "p",
        *,
        api_key: str | None = "k-default",
        location: Location = "cloud",
        can_embed: bool = True,
        timeout_s: float = 5.0,
    ) -> AnthropicProvider | OpenAIProvider:
        settings = ProviderSettings(
            kind=kind, api_key=api_key, timeout_s=timeout_s, location=location
        )
        if kind == "anthropic":  # it never embeds: `can_embed` is for openai only
            settings = replace(settings, base_url=f"{self.root}/{name}")
            return AnthropicProvider(name, settings, http_client=self.http)
        settings = replace(settings, base_url=f"{self.root}/{name}/v1", embeddings=can_embed)
        return OpenAIProvider(name, settings, http_client=self.http)


def recording_client(sent: list[Sent], **kwargs: Any) -> httpx2.AsyncClient:
    async def record(request: httpx2.Request) -> None:
        body = json.loads(request.content) if request.content else {}
        sent.append(Sent(str(request.url), dict(request.headers), body))

    return httpx2.AsyncClient(event_hooks={"request": [record]}, **kwargs)


def json_answer(body: dict[str, Any]) -> Answer:
    return lambda _: httpx2.Response(200, json=body)


def sse_answer(frames: bytes) -> Answer:
    return lambda _: httpx2.Response(
        200, content=frames, headers={"content-type": "text/event-stream"}
    )


def canned(answer: Answer) -> Upstream:
    """An upstream whose every answer is `answer(request)`; close `.http` when done."""
    sent: list[Sent] = []

    def handle(request: httpx2.Request) -> httpx2.Response:
        return answer(sent[-1])

    http = recording_client(sent, transport=httpx2.MockTransport(handle))
    return Upstream("http://canned", http, sent)


Answer = Callable[[Sent], httpx2.Response]
