"""Anthropic's Messages API, and anything that speaks it.

The SDK client (`anthropic.AsyncAnthropic`, one per key) says what a request carries: its
URL, headers and timeout, and the errors a failure raises. The request itself is the JSON
body `messages.create` would send, sent on the provider's connections (`SdkAdapter`), and the
answer is read from its JSON, a stream from its events: the SDK's request options and
response models cost several times the exchange itself.

The pinned SDK (anthropic 2.12) has no sampling parameters on `messages.create`:
`temperature` and `top_p` of a request are not sent to Anthropic. A compatible
server that wants them can get them through `ChatRequest.extra` (sent as extra
body fields).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable, Mapping
from contextlib import aclosing
from typing import Any

import anthropic
import httpx2

from resilience.errors import StreamTruncatedError
from resilience.models import (
    JSON,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    ToolCallDelta,
    Usage,
    finish_reason,
    tool_choice_spec,
    tool_spec,
)
from resilience.providers.base import (
    ProviderKind,
    SdkAdapter,
    answer_of,
    tokens,
    without_none,
    without_nulls,
)
from resilience.providers.sending import watch
from resilience.types import ProviderName

DEFAULT_MAX_TOKENS = 1024
"""Anthropic requires `max_tokens`; sent when the request leaves it to the provider."""


class AnthropicProvider(SdkAdapter[anthropic.AsyncAnthropic]):
    """Anthropic, or anything that speaks its Messages API; it cannot embed."""

    kind: ProviderKind = "anthropic"
    can_embed = False
    default_base_url = "https://api.anthropic.com"

    def _new_client(self, api_key: str) -> anthropic.AsyncAnthropic:
        return anthropic.AsyncAnthropic(
            api_key=api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout,
            http_client=self.http_client,
        )

    def _transport_failure(self, exc: httpx2.TransportError, request: httpx2.Request) -> Exception:
        if isinstance(exc, httpx2.TimeoutException):
            return anthropic.APITimeoutError(request=request)
        return anthropic.APIConnectionError(request=request)

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> ChatResponse:
        watch()  # a failure before the request goes out is the caller's
        params = to_params(request, model)
        return chat_response(
            await self._send_params("anthropic.messages", params, api_key), self.name, model
        )

    async def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        watch()  # a failure before the request goes out is the caller's
        params = to_params(request, model)
        params["stream"] = True
        input_tokens = 0
        usage: Usage | None = None
        stop_reason: str | None = None
        tools: dict[int, int] = {}  # content block index -> tool call index
        opened = self._stream_params("anthropic.messages", params, api_key)
        async with aclosing(opened) as events:  # closed at once when the caller stops
            async for event in events:
                kind = event.get("type")
                if kind == "content_block_delta":
                    delta = _object(event.get("delta"))
                    index = event.get("index")
                    if delta.get("type") == "text_delta":
                        yield ChatChunk(text_delta=str(delta.get("text") or ""))
                    elif delta.get("type") == "input_json_delta" and index in tools:
                        arguments = str(delta.get("partial_json") or "")
                        yield ChatChunk(
                            tool_calls=(ToolCallDelta(index=tools[index], arguments=arguments),)
                        )
                    else:  # thinking, signature, citations
                        yield ChatChunk(raw=without_nulls(event))
                elif kind == "content_block_start":
                    block = _object(event.get("content_block"))
                    index = event.get("index")
                    if block.get("type") == "tool_use" and isinstance(index, int):
                        tools[index] = len(tools)
                        call = ToolCallDelta(
                            index=tools[index], id=block.get("id"), name=block.get("name")
                        )
                        yield ChatChunk(tool_calls=(call,))
                    elif block.get("type") == "text" and block.get("text"):
                        yield ChatChunk(text_delta=str(block["text"]))
                elif kind == "message_start":
                    input_tokens = tokens(
                        _object(event.get("message")).get("usage"), "input_tokens"
                    )
                elif kind == "message_delta":
                    stop = _object(event.get("delta")).get("stop_reason")
                    stop_reason = stop if isinstance(stop, str) else None
                    counted = _object(event.get("usage"))
                    if isinstance(counted.get("input_tokens"), int):  # newer servers repeat it here
                        input_tokens = tokens(counted, "input_tokens")
                    usage = Usage(input_tokens, tokens(counted, "output_tokens"))
                elif kind == "message_stop":
                    yield ChatChunk(finish_reason=finish_reason(stop_reason), usage=usage)
                    async for _ in events:  # the rest of the body: the connection is reused
                        pass
                    return
        raise StreamTruncatedError(
            "anthropic stream ended without message_stop", provider=self.name
        )

    async def embed(
        self, request: EmbeddingRequest, *, model: str, api_key: str | None = None
    ) -> EmbeddingResponse:
        raise NotImplementedError(
            f"provider {self.name!r} is of kind anthropic, which has no embeddings API"
        )


def to_params(request: ChatRequest, model: str) -> dict[str, Any]:
    """A normalised request as `messages.create` keyword arguments.

    System messages join the `system` parameter; tool messages become user turns
    of tool_result blocks; consecutive turns of one role are merged.
    """
    system = [m.text for m in request.messages if m.role == "system"]
    if request.system:
        system.insert(0, request.system)
    params: dict[str, Any] = {
        "model": model,
        "messages": _turns(m for m in request.messages if m.role != "system"),
        "max_tokens": request.max_tokens or DEFAULT_MAX_TOKENS,
    }
    if system:
        params["system"] = "\n\n".join(system)
    if request.stop:
        params["stop_sequences"] = list(request.stop)
    if request.tools:
        params["tools"] = [tool_spec(t) for t in request.tools]
    choice = tool_choice_spec(request.tool_choice)
    if choice is not None:
        params["tool_choice"] = choice
    if "user_id" in request.metadata:
        params["metadata"] = {"user_id": str(request.metadata["user_id"])}
    if request.extra:
        params["extra_body"] = dict(request.extra)
    return params


def _turns(messages: Iterable[Message]) -> list[dict[str, Any]]:
    turns: list[dict[str, Any]] = []
    for m in messages:
        role = "assistant" if m.role == "assistant" else "user"
        if isinstance(m.content, str):
            content: str | list[dict[str, Any]] = m.content
        else:
            content = [_outgoing(b) for b in m.content]
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"] = _blocks(turns[-1]["content"]) + _blocks(content)
        else:
            turns.append({"role": role, "content": content})
    return turns


def _blocks(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _outgoing(block: JSON) -> dict[str, Any]:
    if block.get("type") == "tool_use":  # only the fields the API accepts
        return {k: block[k] for k in ("type", "id", "name", "input") if k in block}
    return dict(block)


def chat_response(data: Mapping[str, Any], provider: ProviderName, model: str) -> ChatResponse:
    """A Messages API answer (its JSON object) as a normalised answer; `model` is the one
    asked for, named when the answer names none. Raises `ValueError` for an answer without
    its list of content blocks."""
    content = data.get("content")
    if not isinstance(content, list) or not all(isinstance(b, dict) for b in content):
        raise ValueError(f"provider {provider!r} answered without a list of content blocks")
    blocks = tuple(normalise_block(without_none(b)) for b in content)
    stop = data.get("stop_reason")
    raw_stop = stop if isinstance(stop, str) else None
    usage = data.get("usage")
    counted = Usage(tokens(usage, "input_tokens"), tokens(usage, "output_tokens"))
    return answer_of(data, blocks, finish_reason(raw_stop), raw_stop, counted, provider, model)


def _object(value: object) -> dict[str, Any]:
    """An event's nested object; an empty one when the server sent none."""
    return value if isinstance(value, dict) else {}


def normalise_block(block: dict[str, Any]) -> dict[str, Any]:
    """An answer's content block as a normalised one (fields beyond the API's dropped from
    text and tool_use blocks; others as the provider gave them)."""
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block.get("text", "")}
    if kind == "tool_use":
        return {k: block[k] for k in ("type", "id", "name", "input") if k in block}
    return block
