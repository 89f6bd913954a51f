"""Adapter over `anthropic.AsyncAnthropic` (the Messages API).

The pinned SDK (anthropic 2.12) has no sampling parameters on `messages.create`:
`temperature` and `top_p` of a request are not sent to Anthropic. A compatible
server that wants them can get them through `ChatRequest.extra` (sent as extra
body fields).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import anthropic
import httpx2

from resilience.exceptions import StreamTruncatedError
from resilience.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Usage,
    finish_reason,
)
from resilience.providers.base import Location, ProviderKind, SharedPool
from resilience.types import ProviderName

DEFAULT_BASE_URL = "https://api.anthropic.com"
DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider:
    """Anthropic, or anything that speaks its Messages API; it cannot embed."""

    kind: ProviderKind = "anthropic"
    can_embed = False

    def __init__(
        self,
        name: ProviderName,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        location: Location = "cloud",
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.location: Location = location
        self._base_url = base_url or DEFAULT_BASE_URL
        self._timeout_s = timeout_s
        self._default_key = api_key
        self._pool = SharedPool(timeout_s, http_client)
        self._clients: dict[str | None, anthropic.AsyncAnthropic] = {}

    def client(self, api_key: str | None = None) -> anthropic.AsyncAnthropic:
        """The SDK client for a key (the provider's own when None), on the shared pool."""
        found = self._clients.get(api_key)
        if found is None:
            found = anthropic.AsyncAnthropic(
                api_key=api_key or self._default_key or "unused",
                base_url=self._base_url,
                max_retries=0,
                timeout=self._timeout_s,
                http_client=self._pool.http,
            )
            self._clients[api_key] = found
        return found

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> ChatResponse:
        message = await self.client(api_key).messages.create(**to_params(request, model))
        blocks = tuple(block.model_dump(exclude_none=True) for block in message.content)
        text = "".join(b.get("text", "") for b in blocks if b.get("type") == "text")
        return ChatResponse(
            text=text,
            content=blocks,
            finish_reason=finish_reason(message.stop_reason),
            raw_finish_reason=message.stop_reason,
            usage=Usage(message.usage.input_tokens, message.usage.output_tokens),
            provider=self.name,
            model=message.model,
            response_id=message.id,
        )

    async def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        events = await self.client(api_key).messages.create(
            **to_params(request, model), stream=True
        )
        input_tokens = 0
        stop_reason: str | None = None
        usage: Usage | None = None
        async with events:
            async for event in events:
                if event.type == "message_start":
                    input_tokens = event.message.usage.input_tokens
                elif event.type == "content_block_delta" and event.delta.type == "text_delta":
                    yield ChatChunk(text_delta=event.delta.text)
                elif event.type == "message_delta":
                    stop_reason = event.delta.stop_reason
                    usage = Usage(input_tokens, event.usage.output_tokens)
                elif event.type == "message_stop":
                    yield ChatChunk(finish_reason=finish_reason(stop_reason), usage=usage)
                    return
        raise StreamTruncatedError(
            "anthropic stream ended without message_stop", provider=self.name
        )

    async def embed(
        self, request: EmbeddingRequest, *, model: str, api_key: str | None = None
    ) -> EmbeddingResponse:
        raise NotImplementedError(f"provider {self.name!r} (anthropic) cannot embed")

    async def aclose(self) -> None:
        await self._pool.aclose()

    def __repr__(self) -> str:
        return f"AnthropicProvider({self.name!r}, base_url={self._base_url!r})"


def to_params(request: ChatRequest, model: str) -> dict[str, Any]:
    """A normalised request as `messages.create` keyword arguments."""
    system = [m.text for m in request.messages if m.role == "system"]
    if request.system:
        system.insert(0, request.system)
    messages: list[dict[str, Any]] = []
    for m in request.messages:
        if m.role == "system":
            continue
        role = "assistant" if m.role == "assistant" else "user"
        content = m.content if isinstance(m.content, str) else [dict(b) for b in m.content]
        messages.append({"role": role, "content": content})
    params: dict[str, Any] = {
        "model": model,
        "messages": messages,
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        params["system"] = "\n\n".join(system)
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = [dict(t) for t in request.tools]
    if request.tool_choice is not None:
        params["tool_choice"] = request.tool_choice
    if "user_id" in request.metadata:
        params["metadata"] = {"user_id": str(request.metadata["user_id"])}
    if request.extra:
        params["extra_body"] = dict(request.extra)
    return params
