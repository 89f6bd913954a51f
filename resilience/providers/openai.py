"""Adapter over `openai.AsyncOpenAI`: OpenAI and any OpenAI-compatible server (vLLM, llama.cpp)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import httpx2
import openai

from resilience.exceptions import StreamTruncatedError
from resilience.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Usage,
    finish_reason,
)
from resilience.providers.base import Location, ProviderKind, SdkAdapter
from resilience.types import ProviderName


class OpenAIProvider(SdkAdapter[openai.AsyncOpenAI]):
    """OpenAI's chat completions and embeddings APIs, wherever they are served."""

    kind: ProviderKind = "openai"
    sdk = openai.AsyncOpenAI
    default_base_url = "https://api.openai.com/v1"

    def __init__(
        self,
        name: ProviderName,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        location: Location = "cloud",
        can_embed: bool = True,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            name,
            api_key=api_key,
            base_url=base_url,
            timeout_s=timeout_s,
            location=location,
            http_client=http_client,
        )
        self.can_embed = can_embed

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> ChatResponse:
        completion = await self.client(api_key).chat.completions.create(**to_params(request, model))
        choice = completion.choices[0]
        text = choice.message.content or ""
        blocks: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
        calls = choice.message.tool_calls or ()
        blocks.extend({"type": "tool_call", **c.model_dump(exclude_none=True)} for c in calls)
        usage = completion.usage
        return ChatResponse(
            text=text,
            content=tuple(blocks),
            finish_reason=finish_reason(choice.finish_reason),
            raw_finish_reason=choice.finish_reason,
            usage=Usage(usage.prompt_tokens, usage.completion_tokens) if usage else Usage(),
            provider=self.name,
            model=completion.model,
            response_id=completion.id,
        )

    async def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        chunks = await self.client(api_key).chat.completions.create(
            **to_params(request, model), stream=True, stream_options={"include_usage": True}
        )
        finished: FinishReason | None = None
        usage: Usage | None = None
        async with chunks:
            async for chunk in chunks:
                if chunk.usage is not None:
                    usage = Usage(chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield ChatChunk(text_delta=choice.delta.content)
                    if choice.finish_reason is not None:
                        finished = finish_reason(choice.finish_reason)
        if finished is None:
            # the SDK stops silently at EOF whether or not [DONE] came: no finish_reason
            # means the answer was cut short
            raise StreamTruncatedError(
                "openai stream ended without a finish_reason", provider=self.name
            )
        yield ChatChunk(finish_reason=finished, usage=usage)

    async def embed(
        self, request: EmbeddingRequest, *, model: str, api_key: str | None = None
    ) -> EmbeddingResponse:
        if not self.can_embed:
            raise NotImplementedError(f"provider {self.name!r} is configured without embeddings")
        params: dict[str, Any] = {
            "model": model,
            "input": list(request.inputs),
            "encoding_format": "float",
        }
        if request.dimensions is not None:
            params["dimensions"] = request.dimensions
        result = await self.client(api_key).embeddings.create(**params)
        ordered = sorted(result.data, key=lambda d: d.index)
        return EmbeddingResponse(
            vectors=tuple(tuple(d.embedding) for d in ordered),
            usage=Usage(result.usage.prompt_tokens, 0),
            provider=self.name,
            model=result.model,
        )


def to_params(request: ChatRequest, model: str) -> dict[str, Any]:
    """A normalised request as `chat.completions.create` keyword arguments."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for m in request.messages:
        content = m.content if isinstance(m.content, str) else [dict(b) for b in m.content]
        messages.append({"role": m.role, "content": content})
    params: dict[str, Any] = {"model": model, "messages": messages}
    if request.max_tokens is not None:
        params["max_tokens"] = request.max_tokens
    if request.temperature is not None:
        params["temperature"] = request.temperature
    if request.top_p is not None:
        params["top_p"] = request.top_p
    if request.stop:
        params["stop"] = list(request.stop)
    if request.tools:
        params["tools"] = [dict(t) for t in request.tools]
    if request.tool_choice is not None:
        params["tool_choice"] = request.tool_choice
    if "user_id" in request.metadata:
        params["user"] = str(request.metadata["user_id"])
    if request.extra:
        params["extra_body"] = dict(request.extra)
    return params
