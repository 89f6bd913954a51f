"""The public wire formats a gateway speaks, to and from the normalised model.

OpenAI chat completions and embeddings, and Anthropic Messages: request bodies
in (validated, with errors naming the field), responses and SSE frames out.
Pure functions, no I/O.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from typing import Any

from resilience.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    Role,
)

_ROLES: tuple[Role, ...] = ("user", "assistant", "system", "tool")
_OPENAI_FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "other": "stop",
}
_ANTHROPIC_STOP = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
    "other": "end_turn",
}


class WireError(ValueError):
    """A request body that does not fit the format; the message names the field."""


# -- requests ---------------------------------------------------------------------------------


def chat_request_from_openai(body: Any) -> tuple[str, bool, ChatRequest]:
    """(model or route, stream, request) from an OpenAI chat completions body."""
    data = _object(body, "body")
    model = _string(data, "model")
    system: list[str] = []
    messages: list[Message] = []
    for i, raw in enumerate(_list(data, "messages")):
        item = _object(raw, f"messages[{i}]")
        role = item.get("role")
        if role not in _ROLES:
            raise WireError(
                f"messages[{i}].role: expected one of {', '.join(_ROLES)}, got {role!r}"
            )
        content = _content(item.get("content"), f"messages[{i}].content")
        if role == "system":
            system.append(content if isinstance(content, str) else "")
            continue
        messages.append(Message(role=role, content=content))
    if not messages:
        raise WireError("messages: at least one non-system message is required")
    stop = data.get("stop")
    stops = (stop,) if isinstance(stop, str) else tuple(str(s) for s in stop or ())
    request = ChatRequest(
        messages=tuple(messages),
        system="\n\n".join(system) or None,
        max_tokens=_int(data, "max_completion_tokens") or _int(data, "max_tokens"),
        temperature=_number(data, "temperature"),
        top_p=_number(data, "top_p"),
        tools=tuple(data.get("tools") or ()),
        tool_choice=data.get("tool_choice"),
        stop=stops,
        metadata={"user_id": data["user"]} if isinstance(data.get("user"), str) else {},
    )
    return model, data.get("stream") is True, request


def chat_request_from_anthropic(body: Any) -> tuple[str, bool, ChatRequest]:
    """(model or route, stream, request) from an Anthropic Messages body."""
    data = _object(body, "body")
    model = _string(data, "model")
    max_tokens = _int(data, "max_tokens")
    if max_tokens is None:
        raise WireError("max_tokens: required")
    messages = []
    for i, raw in enumerate(_list(data, "messages")):
        item = _object(raw, f"messages[{i}]")
        role = item.get("role")
        if role not in ("user", "assistant"):
            raise WireError(f"messages[{i}].role: expected user or assistant, got {role!r}")
        messages.append(
            Message(role=role, content=_content(item.get("content"), f"messages[{i}].content"))
        )
    if not messages:
        raise WireError("messages: at least one message is required")
    system = data.get("system")
    if isinstance(system, list):
        system = "".join(str(b.get("text", "")) for b in system if isinstance(b, dict))
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    request = ChatRequest(
        messages=tuple(messages),
        system=system if isinstance(system, str) and system else None,
        max_tokens=max_tokens,
        temperature=_number(data, "temperature"),
        top_p=_number(data, "top_p"),
        tools=tuple(data.get("tools") or ()),
        tool_choice=data.get("tool_choice"),
        stop=tuple(str(s) for s in data.get("stop_sequences") or ()),
        metadata=metadata or {},
    )
    return model, data.get("stream") is True, request


def embedding_request_from_openai(body: Any) -> tuple[str, EmbeddingRequest]:
    data = _object(body, "body")
    model = _string(data, "model")
    raw = data.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise WireError("input: expected a string or a non-empty list of strings")
    return model, EmbeddingRequest(inputs=tuple(inputs), dimensions=_int(data, "dimensions"))


# -- responses ----------------------------------------------------------------------------------


def chat_response_to_openai(response: ChatResponse, *, model: str) -> dict[str, Any]:
    return {
        "id": response.response_id or f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.text},
                "finish_reason": _OPENAI_FINISH[response.finish_reason],
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": response.usage.input_tokens,
            "completion_tokens": response.usage.output_tokens,
            "total_tokens": response.usage.input_tokens + response.usage.output_tokens,
        },
    }


def chat_response_to_anthropic(response: ChatResponse, *, model: str) -> dict[str, Any]:
    return {
        "id": response.response_id or f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": response.text}],
        "stop_reason": _ANTHROPIC_STOP[response.finish_reason],
        "stop_sequence": None,
        "usage": {
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
        },
    }


def embedding_response_to_openai(response: EmbeddingResponse, *, model: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": list(vector)}
            for i, vector in enumerate(response.vectors)
        ],
        "model": model,
        "usage": {
            "prompt_tokens": response.usage.input_tokens,
            "total_tokens": response.usage.input_tokens,
        },
    }


def openai_error(message: str, *, type_: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


# -- server-sent events -------------------------------------------------------------------------


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


class OpenAIStreamWriter:
    """`chat.completion.chunk` frames, then `[DONE]`; an error is a `data: {"error": ...}` frame."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""}, None)

    def chunk(self, chunk: ChatChunk) -> bytes:
        frames = b""
        if chunk.text_delta:
            frames += self._chunk({"content": chunk.text_delta}, None)
        if chunk.finish_reason is not None:
            frames += self._chunk({}, _OPENAI_FINISH[chunk.finish_reason])
        return frames

    def end(self) -> bytes:
        return sse("[DONE]")

    def error(self, message: str, code: str) -> bytes:
        return sse(openai_error(message, type_="server_error", code=code))

    def _chunk(self, delta: Mapping[str, Any], finish: str | None) -> bytes:
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": [
                    {"index": 0, "delta": dict(delta), "finish_reason": finish, "logprobs": None}
                ],
            }
        )


class AnthropicStreamWriter:
    """The Messages event sequence; an error is an `event: error` frame."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self.output_tokens = 0

    def start(self) -> bytes:
        message: dict[str, Any] = {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        block = {
            "type": "content_block_start",
            "index": 0,
            "content_block": {"type": "text", "text": ""},
        }
        return sse({"type": "message_start", "message": message}, "message_start") + sse(
            block, "content_block_start"
        )

    def chunk(self, chunk: ChatChunk) -> bytes:
        frames = b""
        if chunk.text_delta:
            delta = {"type": "text_delta", "text": chunk.text_delta}
            frames += sse(
                {"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"
            )
        if chunk.usage is not None:
            self.output_tokens = chunk.usage.output_tokens
        if chunk.finish_reason is not None:
            frames += sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
            frames += sse(
                {
                    "type": "message_delta",
                    "delta": {
                        "stop_reason": _ANTHROPIC_STOP[chunk.finish_reason],
                        "stop_sequence": None,
                    },
                    "usage": {"output_tokens": self.output_tokens},
                },
                "message_delta",
            )
        return frames

    def end(self) -> bytes:
        return sse({"type": "message_stop"}, "message_stop")

    def error(self, message: str, code: str) -> bytes:
        body = {"type": "error", "error": {"type": "api_error", "message": message}}
        return sse(body, "error")


# -- validation helpers -------------------------------------------------------------------------


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise WireError(f"{where}: expected a JSON object")
    return value


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise WireError(f"{key}: expected a list")
    return value


def _string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise WireError(f"{key}: expected a non-empty string")
    return value


def _int(data: Mapping[str, Any], key: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise WireError(f"{key}: expected a positive integer, got {value!r}")
    return value


def _number(data: Mapping[str, Any], key: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise WireError(f"{key}: expected a number, got {value!r}")
    return float(value)


def _content(value: Any, where: str) -> str | tuple[dict[str, Any], ...]:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(b, dict) for b in value):
        return tuple(value)
    raise WireError(f"{where}: expected a string or a list of content blocks")
