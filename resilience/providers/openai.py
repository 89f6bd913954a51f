"""OpenAI's chat completions and embeddings: OpenAI and any compatible server (vLLM, llama.cpp).

The SDK client (`openai.AsyncOpenAI`, one per key) says what a request carries: its URL,
headers and timeout, and the errors a failure raises. Chat is the JSON body
`chat.completions.create` would send, sent on the provider's connections (`SdkAdapter`), its
answer read from its JSON, a stream from its events; embeddings go through the SDK.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from contextlib import aclosing
from typing import Any

import httpx2
import openai

from resilience.errors import StreamTruncatedError
from resilience.models import (
    JSON,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Message,
    ToolCallDelta,
    Usage,
    finish_reason,
    text_of,
    tool_arguments,
    tool_choice_spec,
    tool_input,
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


class OpenAIProvider(SdkAdapter[openai.AsyncOpenAI]):
    """OpenAI's chat completions and embeddings APIs, wherever they are served."""

    kind: ProviderKind = "openai"
    default_base_url = "https://api.openai.com/v1"

    def _new_client(self, api_key: str) -> openai.AsyncOpenAI:
        client = openai.AsyncOpenAI(
            api_key=api_key,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout,
            http_client=self.http_client,
        )
        # The SDK reads OPENAI_ORG_ID / OPENAI_PROJECT_ID from the environment and would
        # send them with every key to every OpenAI-compatible server: never wanted here.
        client.organization = None
        client.project = None
        return client

    def _transport_failure(self, exc: httpx2.TransportError, request: httpx2.Request) -> Exception:
        if isinstance(exc, httpx2.TimeoutException):
            return openai.APITimeoutError(request=request)
        return openai.APIConnectionError(request=request)

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> ChatResponse:
        watch()  # a failure before the request goes out is the caller's
        params = to_params(request, model)
        return chat_response(
            await self._send_params("openai.chat", params, api_key), self.name, model
        )

    async def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        watch()  # a failure before the request goes out is the caller's
        params = to_params(request, model)
        params.update(stream=True, stream_options={"include_usage": True})
        finished: FinishReason | None = None
        usage: Usage | None = None
        opened = self._stream_params("openai.chat", params, api_key)
        async with aclosing(opened) as chunks:  # closed at once when the caller stops
            async for chunk in chunks:
                reported = chunk.get("usage")
                if isinstance(reported, dict):
                    usage = Usage(
                        tokens(reported, "prompt_tokens"), tokens(reported, "completion_tokens")
                    )
                choices = chunk.get("choices")
                for choice in choices if isinstance(choices, list) else ():
                    if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                        continue  # the normalised model has one answer
                    delta = choice.get("delta")
                    if isinstance(delta, dict):
                        for found in _delta_chunks(delta, chunk):
                            yield found
                    if choice.get("finish_reason") is not None:
                        finished = finish_reason(choice["finish_reason"])
        # a stream may end at [DONE] without any finish_reason: that one is cut
        if finished is None:
            raise StreamTruncatedError(
                "openai stream ended without a finish_reason", provider=self.name
            )
        yield ChatChunk(finish_reason=finished, usage=usage)

    async def embed(
        self, request: EmbeddingRequest, *, model: str, api_key: str | None = None
    ) -> EmbeddingResponse:
        watch()  # a failure before the request goes out is the caller's
        if not self.can_embed:
            raise NotImplementedError(f"provider {self.name!r} is configured without embeddings")
        params: dict[str, Any] = {
            "model": model,
            "input": list(request.inputs),
            "encoding_format": "float",  # some compatible servers cannot do base64
        }
        if request.dimensions is not None:
            params["dimensions"] = request.dimensions
        result = await self.client(api_key).embeddings.create(**params)
        if len(result.data) != len(request.inputs):
            raise ValueError(
                f"provider {self.name!r} returned {len(result.data)} vectors "
                f"for {len(request.inputs)} inputs"
            )
        ordered = sorted(result.data, key=lambda d: d.index)
        usage = result.usage
        return EmbeddingResponse(
            vectors=tuple(tuple(d.embedding) for d in ordered),
            usage=Usage(usage.prompt_tokens, 0) if usage else Usage(),
            provider=self.name,
            model=result.model,
        )


def _delta_chunks(delta: dict[str, Any], chunk: dict[str, Any]) -> list[ChatChunk]:
    """One choice's delta as normalised chunks: its text, its tool call pieces, and a
    refusal as the whole chunk (`raw`)."""
    found: list[ChatChunk] = []
    content = delta.get("content")
    if content:
        found.append(ChatChunk(text_delta=str(content)))
    calls = delta.get("tool_calls")
    if calls and isinstance(calls, list):
        pieces = []
        for call in calls:
            if not isinstance(call, dict):
                continue
            function = call.get("function")
            function = function if isinstance(function, dict) else {}
            pieces.append(
                ToolCallDelta(
                    index=call.get("index", 0),
                    id=call.get("id"),
                    name=function.get("name"),
                    arguments=function.get("arguments") or "",
                )
            )
        found.append(ChatChunk(tool_calls=tuple(pieces)))
    if delta.get("refusal"):
        found.append(ChatChunk(raw=without_nulls(chunk)))
    return found


def chat_response(data: Mapping[str, Any], provider: ProviderName, model: str) -> ChatResponse:
    """A chat completion (its JSON object) as a normalised answer, from its first choice;
    `model` is the one asked for, named when the answer names none. Raises `ValueError` for
    an answer without a choice holding a message."""
    choices = data.get("choices")
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(choice, dict) or not isinstance(message, dict):
        raise ValueError(f"provider {provider!r} answered without any choice")
    if not isinstance(message.get("content"), str | None) or not isinstance(
        message.get("refusal"), str | None
    ):
        raise ValueError(f"provider {provider!r} answered a message whose text is not a string")
    blocks = message_blocks(message)
    stop = choice.get("finish_reason")
    raw_stop = stop if isinstance(stop, str) else None
    finish = finish_reason(raw_stop)
    if message.get("refusal") and finish == "stop":
        finish = "content_filter"
    usage = data.get("usage")
    counted = Usage(tokens(usage, "prompt_tokens"), tokens(usage, "completion_tokens"))
    return answer_of(data, blocks, finish, raw_stop, counted, provider, model)


def message_blocks(message: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """An assistant message (its JSON object, its content and refusal strings or null) as
    normalised blocks: text, then tool_use."""
    blocks: list[dict[str, Any]] = []
    content, refusal = message.get("content"), message.get("refusal")
    if content:
        blocks.append({"type": "text", "text": content})
    if refusal:
        blocks.append({"type": "refusal", "refusal": refusal})
    calls = message.get("tool_calls")
    for call in calls if isinstance(calls, list) else ():
        if not isinstance(call, dict):
            continue
        function = call.get("function")
        if call.get("type", "function") == "function" and isinstance(function, dict):
            arguments = function.get("arguments")
            blocks.append(
                {
                    "type": "tool_use",
                    "id": call.get("id"),
                    "name": function.get("name"),
                    "input": tool_input(arguments if isinstance(arguments, str) else ""),
                }
            )
        else:  # custom tools: no normalised form
            blocks.append(without_none(call))
    return tuple(blocks)


def to_params(request: ChatRequest, model: str) -> dict[str, Any]:
    """A normalised request as `chat.completions.create` keyword arguments."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for m in request.messages:
        if isinstance(m.content, str):  # plain text, the usual message: as `_messages` does
            messages.append({"role": m.role, "content": m.content})
        else:
            messages.extend(_messages(m))
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
        params["tools"] = [_tool(t) for t in request.tools]
    choice = tool_choice_spec(request.tool_choice) if request.tool_choice is not None else None
    if choice is not None:
        params["tool_choice"] = _TOOL_CHOICE.get(choice["type"]) or {
            "type": "function",
            "function": {"name": choice.get("name")},
        }
        if choice.get("disable_parallel_tool_use") is True:
            params["parallel_tool_calls"] = False
    if "user_id" in request.metadata:
        params["user"] = str(request.metadata["user_id"])
    if request.extra:
        params["extra_body"] = dict(request.extra)
    return params


_TOOL_CHOICE = {"auto": "auto", "none": "none", "any": "required"}


def _messages(m: Message) -> list[dict[str, Any]]:
    """One normalised message as OpenAI messages: tool results become `tool` messages
    (first: they must follow the assistant's tool calls), tool_use blocks `tool_calls`."""
    if isinstance(m.content, str):
        return [{"role": m.role, "content": m.content}]
    out: list[dict[str, Any]] = []
    rest: list[JSON] = []
    calls: list[dict[str, Any]] = []
    for block in m.content:
        kind = block.get("type")
        if kind == "tool_result":
            content = block.get("content", "")
            text = content if isinstance(content, str) else text_of(content)
            out.append({"role": "tool", "tool_call_id": block.get("tool_use_id"), "content": text})
        elif kind == "tool_use":
            calls.append(
                {
                    "id": block.get("id"),
                    "type": "function",
                    "function": {
                        "name": block.get("name"),
                        "arguments": tool_arguments(block.get("input", {})),
                    },
                }
            )
        else:
            rest.append(block)
    if rest or calls:
        role = "user" if m.role == "tool" else m.role
        message: dict[str, Any] = {"role": role, "content": _content(rest, role)}
        if calls:
            message["tool_calls"] = calls
        out.append(message)
    return out


def _content(blocks: list[JSON], role: str) -> str | list[dict[str, Any]] | None:
    if not blocks:
        return None  # an assistant message of tool calls only
    if all(b.get("type") == "text" for b in blocks) and (len(blocks) == 1 or role != "user"):
        return text_of(blocks)  # plain strings suit the most OpenAI-compatible servers
    return [dict(b) for b in blocks]


def _tool(tool: JSON) -> dict[str, Any]:
    if "input_schema" not in tool:  # OpenAI's own shape (function or custom): as it is
        return dict(tool)
    spec = tool_spec(tool)
    function: dict[str, Any] = {"name": spec["name"], "parameters": spec["input_schema"]}
    if "description" in spec:
        function["description"] = spec["description"]
    return {"type": "function", "function": function}
