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
from resilience.providers.base import ProviderKind, SdkAdapter

DEFAULT_MAX_TOKENS = 1024


class AnthropicProvider(SdkAdapter[anthropic.AsyncAnthropic]):
    """Anthropic, or anything that speaks its Messages API; it cannot embed."""

    kind: ProviderKind = "anthropic"
    can_embed = False
    sdk = anthropic.AsyncAnthropic
    default_base_url = "https://api.anthropic.com"

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
