"""The public wire formats a gateway speaks, to and from the normalised model.

OpenAI chat completions and embeddings, and Anthropic Messages: request bodies
in (validated, with errors naming the field, e.g. `messages[2].role: ...`),
responses and SSE frames out. Pure functions and small stateful stream
writers; no I/O.

Tool definitions, tool calls and tool results are converted (OpenAI's
`tool_calls` / `tool` messages <-> tool_use / tool_result blocks), so a request
in one format can be served by a provider of the other kind. Fields with no
counterpart in the normalised model (OpenAI `response_format`, `seed`,
`logprobs`...; Anthropic `thinking`...) are not read here; `n` other than 1 is refused.
`resilience.formats.cross` decides, field by field, what crosses to the other kind and
refuses what cannot (`CannotCarry`), so nothing is dropped on the way.

A body is refused, naming the field, when strict JSON in UTF-8 cannot carry it to a
provider (a lone surrogate in any string or key, NaN, an infinity, nesting deeper than
`MAX_JSON_DEPTH`), when an identifier (tool names, tool call ids, the user id) holds a
control character, or when `model` is no route or model name (`MODEL_NAME`): the
request would fail before it left, and the caller is the one to hear why.
"""

from __future__ import annotations

import base64
import json
import math
import struct
import time
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from resilience.models import (
    JSON,
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    identifier_problem,
    json_problem,
    model_name_problem,
    tool_arguments,
    tool_choice_spec,
    tool_input,
    tool_spec,
)

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
_ANTHROPIC_ERROR = {"overloaded": "overloaded_error", "rate_limited": "rate_limit_error"}


class WireError(ValueError):
    """A request body that does not fit the format; the message names the field."""

    @property
    def param(self) -> str | None:
        """The field the message names (`messages[2].role`), for the error body's `param`."""
        return field_of(str(self))


def field_of(message: str) -> str | None:
    """The field path a `"<field>: <problem>"` message starts with; None for `body: ...`
    (the whole body) and for messages that name no field."""
    field, sep, _ = message.partition(": ")
    if not sep or field == "body" or not field or len(field) > 256:
        return None
    if any(c.isspace() or c in "'\"" for c in field):
        return None
    return field


# -- requests ---------------------------------------------------------------------------------


def chat_request_from_openai(body: Any) -> tuple[str, bool, ChatRequest]:
    """(model or route, stream, request) from an OpenAI chat completions body."""
    data = _sendable(body)
    model = _model(data)
    if data.get("n") not in (None, 1):
        raise WireError(f"n: only 1 is supported, got {data['n']!r}")
    messages = [
        _openai_message(_object(raw, f"messages[{i}]"), f"messages[{i}]")
        for i, raw in enumerate(_list(data, "messages"))
    ]
    if all(m.role == "system" for m in messages):
        raise WireError("messages: at least one non-system message is required")
    choice = _choice(data.get("tool_choice"))
    if data.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    stop = data.get("stop")
    request = ChatRequest(
        messages=tuple(messages),
        max_tokens=_int(data, "max_completion_tokens") or _int(data, "max_tokens"),
        temperature=_number(data, "temperature"),
        top_p=_number(data, "top_p"),
        tools=_tools(data),
        tool_choice=choice,
        stop=(stop,) if isinstance(stop, str) else _strings(data, "stop"),
        metadata={"user_id": _identifier(data["user"], "user")}
        if isinstance(data.get("user"), str)
        else {},
    )
    return model, _stream(data), request


def _openai_message(item: dict[str, Any], where: str) -> Message:
    role = item.get("role")
    if role in ("system", "developer"):
        return Message(role="system", content=_text(item.get("content"), f"{where}.content"))
    if role == "tool":
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str) or not call_id:
            raise WireError(f"{where}.tool_call_id: expected a non-empty string")
        _identifier(call_id, f"{where}.tool_call_id")
        text = _text(item.get("content"), f"{where}.content")
        result = {"type": "tool_result", "tool_use_id": call_id, "content": text}
        return Message(role="tool", content=(result,))
    if role == "user":
        return Message(role="user", content=_content(item.get("content"), f"{where}.content"))
    if role != "assistant":
        raise WireError(
            f"{where}.role: expected one of system, developer, user, assistant, tool, got {role!r}"
        )
    raw_calls = item.get("tool_calls") or []
    content = item.get("content")
    if not raw_calls:
        return Message(role="assistant", content=_content(content or "", f"{where}.content"))
    if not isinstance(raw_calls, list):
        raise WireError(f"{where}.tool_calls: expected a list")
    given = _content(content or "", f"{where}.content")
    blocks: list[dict[str, Any]] = []
    if isinstance(given, str):
        blocks += [{"type": "text", "text": given}] if given else []
    else:
        blocks += [dict(b) for b in given]
    for j, raw in enumerate(raw_calls):
        call = _object(raw, f"{where}.tool_calls[{j}]")
        function = _object(call.get("function"), f"{where}.tool_calls[{j}].function")
        arguments = function.get("arguments", "")
        if not isinstance(call.get("id"), str) or not isinstance(function.get("name"), str):
            raise WireError(f"{where}.tool_calls[{j}]: expected a string id and function.name")
        if not isinstance(arguments, str):
            raise WireError(f"{where}.tool_calls[{j}].function.arguments: expected a string")
        _identifier(call["id"], f"{where}.tool_calls[{j}].id")
        _identifier(function["name"], f"{where}.tool_calls[{j}].function.name")
        blocks.append(
            {
                "type": "tool_use",
                "id": call["id"],
                "name": function["name"],
                "input": tool_input(arguments),
            }
        )
    return Message(role="assistant", content=tuple(blocks))


def chat_request_from_anthropic(body: Any) -> tuple[str, bool, ChatRequest]:
    """(model or route, stream, request) from an Anthropic Messages body."""
    data = _sendable(body)
    model = _model(data)
    max_tokens = _int(data, "max_tokens")
    if max_tokens is None:
        raise WireError("max_tokens: required")
    messages = []
    for i, raw in enumerate(_list(data, "messages")):
        item = _object(raw, f"messages[{i}]")
        role = item.get("role")
        if role not in ("user", "assistant"):
            raise WireError(f"messages[{i}].role: expected one of user, assistant, got {role!r}")
        messages.append(
            Message(role=role, content=_content(item.get("content"), f"messages[{i}].content"))
        )
    if not messages:
        raise WireError("messages: at least one message is required")
    system = data.get("system")
    if system is not None:
        system = _text(system, "system")
    metadata = data.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise WireError("metadata: expected a JSON object")
    user_id = (metadata or {}).get("user_id")
    if user_id is not None:
        if not isinstance(user_id, str):
            raise WireError("metadata.user_id: expected a string")
        _identifier(user_id, "metadata.user_id")
    request = ChatRequest(
        messages=tuple(messages),
        system=system or None,
        max_tokens=max_tokens,
        temperature=_number(data, "temperature"),
        top_p=_number(data, "top_p"),
        tools=_tools(data),
        tool_choice=_choice(data.get("tool_choice")),
        stop=_strings(data, "stop_sequences"),
        metadata=metadata or {},
    )
    return model, _stream(data), request


def embedding_request_from_openai(body: Any) -> tuple[str, EmbeddingRequest]:
    """(model or route, request) from an OpenAI embeddings body."""
    data = _sendable(body)
    model = _model(data)
    raw = data.get("input")
    inputs = [raw] if isinstance(raw, str) else raw
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, str) for i in inputs):
        raise WireError("input: expected a string or a non-empty list of strings")
    encoding = data.get("encoding_format")
    if encoding not in (None, "float", "base64"):
        raise WireError(f"encoding_format: expected float or base64, got {encoding!r}")
    return model, EmbeddingRequest(inputs=tuple(inputs), dimensions=_int(data, "dimensions"))


# -- responses --------------------------------------------------------------------------------


def chat_response_to_openai(response: ChatResponse, *, model: str) -> dict[str, Any]:
    """A `chat.completion` body; `model` is the name the caller asked for."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": response.text or None,
        "refusal": None,
    }
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": tool_arguments(b.get("input", {}))},
        }
        for b in response.content
        if b.get("type") == "tool_use"
    ]
    if calls:
        message["tool_calls"] = calls
    elif message["content"] is None:
        message["content"] = ""
    refusals = [str(b.get("refusal", "")) for b in response.content if b.get("type") == "refusal"]
    if refusals:
        message["refusal"] = "".join(refusals)
    return {
        "id": response.response_id or f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "finish_reason": _OPENAI_FINISH[response.finish_reason],
                "logprobs": None,
            }
        ],
        "usage": _openai_usage(response.usage.input_tokens, response.usage.output_tokens),
    }


def chat_response_to_anthropic(response: ChatResponse, *, model: str) -> dict[str, Any]:
    """A Messages `message` body; `model` is the name the caller asked for."""
    blocks: list[dict[str, Any]] = []
    for b in response.content:
        if b.get("type") == "text":
            blocks.append({"type": "text", "text": str(b.get("text", ""))})
        elif b.get("type") == "tool_use":
            blocks.append({k: b.get(k) for k in ("type", "id", "name", "input")})
        elif b.get("type") == "refusal":  # OpenAI's refusal: Anthropic says it as text
            blocks.append({"type": "text", "text": str(b.get("refusal", ""))})
        elif b.get("type") in ("thinking", "redacted_thinking"):  # an Anthropic answer's own
            blocks.append(dict(b))
    return {
        "id": response.response_id or f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": _ANTHROPIC_STOP[response.finish_reason],
        "stop_sequence": None,
        "usage": {
            "input_tokens": response.usage.input_tokens,
            "output_tokens": response.usage.output_tokens,
        },
    }


def embedding_response_to_openai(
    response: EmbeddingResponse, *, model: str, encoding_format: str = "float"
) -> dict[str, Any]:
    """An embeddings `list` body; `encoding_format="base64"` packs little-endian float32."""

    def encode(vector: tuple[float, ...]) -> list[float] | str:
        if encoding_format != "base64":
            return list(vector)
        return base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()

    return {
        "object": "list",
        "data": [
            {"object": "embedding", "index": i, "embedding": encode(vector)}
            for i, vector in enumerate(response.vectors)
        ],
        "model": model,
        "usage": {
            "prompt_tokens": response.usage.input_tokens,
            "total_tokens": response.usage.input_tokens,
        },
    }


def openai_error(
    message: str, *, type_: str, code: str | None, param: str | None = None
) -> dict[str, Any]:
    """OpenAI's error body: all four keys always there, `param` naming the bad field."""
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def anthropic_error(
    message: str, *, type_: str = "api_error", request_id: str | None = None
) -> dict[str, Any]:
    """Anthropic's error body (an HTTP answer also carries the request id; an SSE error
    event does not)."""
    body: dict[str, Any] = {"type": "error", "error": {"type": type_, "message": message}}
    if request_id is not None:
        body["request_id"] = request_id
    return body


# -- model lists ------------------------------------------------------------------------------


def openai_model(model_id: str, *, owned_by: str, created: int) -> dict[str, Any]:
    """One entry of `GET /v1/models`, or the answer of `GET /v1/models/{id}`."""
    return {"id": model_id, "object": "model", "created": created, "owned_by": owned_by}


def anthropic_model(model_id: str, *, created: int) -> dict[str, Any]:
    """Anthropic's `ModelInfo`: the id is also the display name (a route or a target)."""
    at = datetime.fromtimestamp(created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "type": "model",
        "id": model_id,
        "display_name": model_id,
        "created_at": at,
        "lifecycle": "active",
    }


def openai_model_list(models: list[dict[str, Any]]) -> dict[str, Any]:
    return {"object": "list", "data": models}


def anthropic_model_page(
    models: list[dict[str, Any]],
    *,
    limit: int = 20,
    after_id: str | None = None,
    before_id: str | None = None,
) -> dict[str, Any]:
    """One page of Anthropic's list: `limit` entries after `after_id` (or the last `limit`
    before `before_id`), `has_more` saying whether the list goes on in that direction.
    An id the list does not hold raises `WireError` naming the parameter."""
    ids = [m["id"] for m in models]
    if before_id is not None:
        end = _position(ids, before_id, "before_id")
        start = max(0, end - limit)
        page, more = models[start:end], start > 0
    else:
        start = 0 if after_id is None else _position(ids, after_id, "after_id") + 1
        page, more = models[start : start + limit], start + limit < len(models)
    return {
        "data": page,
        "has_more": more,
        "first_id": page[0]["id"] if page else None,
        "last_id": page[-1]["id"] if page else None,
    }


def _position(ids: list[str], wanted: str, param: str) -> int:
    try:
        return ids.index(wanted)
    except ValueError:
        raise WireError(f"{param}: no model with this id") from None


def _openai_usage(prompt: int, completion: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }


# -- server-sent events -----------------------------------------------------------------------


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; `data` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data, separators=(",", ":"))
    return (f"event: {event}\n" if event else "").encode() + f"data: {payload}\n\n".encode()


class OpenAIStreamWriter:
    """`chat.completion.chunk` frames, then `[DONE]`; an error is a `data: {"error": ...}` frame.

    `include_usage` is the request's `stream_options.include_usage`. True: as OpenAI
    streams it, every chunk carries `"usage": null` and one more chunk, `choices: []` with
    the usage, comes last before `[DONE]`. False: no usage at all, as OpenAI without it.
    None (not known): usage, when known, rides on the finish chunk, since a separate chunk
    with no choices would break callers that did not ask for it.
    """

    def __init__(self, model: str, *, include_usage: bool | None = None) -> None:
        self.model = model
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.include_usage = include_usage

    def start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def chunk(self, chunk: ChatChunk) -> bytes:
        frames = b""
        if chunk.text_delta:
            frames += self._chunk({"content": chunk.text_delta})
        if chunk.tool_calls:
            calls: list[dict[str, Any]] = []
            for call in chunk.tool_calls:
                function: dict[str, Any] = {"arguments": call.arguments}
                entry: dict[str, Any] = {"index": call.index, "function": function}
                if call.id is not None:
                    entry.update(id=call.id, type="function")
                if call.name is not None:
                    function["name"] = call.name
                calls.append(entry)
            frames += self._chunk({"tool_calls": calls})
        if chunk.finish_reason is not None:
            usage = chunk.usage
            counted = _openai_usage(usage.input_tokens, usage.output_tokens) if usage else None
            if self.include_usage is None and counted is not None:
                frames += self._chunk({}, _OPENAI_FINISH[chunk.finish_reason], usage=counted)
            else:
                frames += self._chunk({}, _OPENAI_FINISH[chunk.finish_reason])
            if self.include_usage:
                # OpenAI always sends this chunk when asked; zeros when the provider said nothing
                frames += self._frame([], usage=counted or _openai_usage(0, 0))
        return frames

    def end(self) -> bytes:
        return sse("[DONE]")

    def error(self, message: str, code: str) -> bytes:
        return sse(openai_error(message, type_="server_error", code=code))

    def _chunk(self, delta: JSON, finish: str | None = None, **extra: Any) -> bytes:
        choice = {"index": 0, "delta": dict(delta), "finish_reason": finish, "logprobs": None}
        return self._frame([choice], **extra)

    def _frame(self, choices: list[dict[str, Any]], **extra: Any) -> bytes:
        nulls: dict[str, Any] = {"usage": None} if self.include_usage else {}
        return sse(
            {
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": self.created,
                "model": self.model,
                "choices": choices,
                **nulls,
                **extra,
            }
        )


class AnthropicStreamWriter:
    """The Messages event sequence; an error is an `event: error` frame.

    Content blocks open and close as the chunks change kind: text, then one
    tool_use block per tool call (its arguments as `input_json_delta`).
    """

    def __init__(self, model: str) -> None:
        self.model = model
        self.id = f"msg_{uuid.uuid4().hex[:24]}"
        self._block = -1  # index of the open content block; -1 before the first
        self._kind = ""  # "text" or "tool:<call index>"; "" when no block is open

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
        frames = sse({"type": "message_start", "message": message}, "message_start")
        return frames + self._open("text", {"type": "text", "text": ""})

    def chunk(self, chunk: ChatChunk) -> bytes:
        frames = b""
        text = chunk.text_delta or _refusal_delta(chunk.raw)
        if text:
            if self._kind != "text":
                frames += self._open("text", {"type": "text", "text": ""})
            frames += self._delta({"type": "text_delta", "text": text})
        for call in chunk.tool_calls:
            kind = f"tool:{call.index}"
            if self._kind != kind:
                block: dict[str, Any] = {"type": "tool_use", "id": call.id, "name": call.name}
                frames += self._open(kind, {**block, "input": {}})
            if call.arguments:
                frames += self._delta({"type": "input_json_delta", "partial_json": call.arguments})
        if chunk.finish_reason is not None:
            frames += self._close()
            usage: dict[str, int] = {"output_tokens": 0}
            if chunk.usage is not None:
                usage = {
                    "input_tokens": chunk.usage.input_tokens,
                    "output_tokens": chunk.usage.output_tokens,
                }
            delta = {"stop_reason": _ANTHROPIC_STOP[chunk.finish_reason], "stop_sequence": None}
            frames += sse(
                {"type": "message_delta", "delta": delta, "usage": usage}, "message_delta"
            )
        return frames

    def end(self) -> bytes:
        return sse({"type": "message_stop"}, "message_stop")

    def error(self, message: str, code: str) -> bytes:
        body = anthropic_error(message, type_=_ANTHROPIC_ERROR.get(code, "api_error"))
        return sse(body, "error")

    def _open(self, kind: str, block: JSON) -> bytes:
        frames = self._close()
        self._block += 1
        self._kind = kind
        event = {"type": "content_block_start", "index": self._block, "content_block": block}
        return frames + sse(event, "content_block_start")

    def _close(self) -> bytes:
        if not self._kind:
            return b""
        self._kind = ""
        return sse({"type": "content_block_stop", "index": self._block}, "content_block_stop")

    def _delta(self, delta: JSON) -> bytes:
        event = {"type": "content_block_delta", "index": self._block, "delta": dict(delta)}
        return sse(event, "content_block_delta")


def _refusal_delta(raw: JSON | None) -> str:
    """The refusal text of an OpenAI chunk (a provider's raw event), "" for anything else:
    Anthropic streams a refusal as text, with stop_reason `refusal` at the end."""
    if raw is None or raw.get("object") != "chat.completion.chunk":
        return ""
    for choice in raw.get("choices") or ():
        if isinstance(choice, Mapping) and choice.get("index", 0) == 0:
            delta = choice.get("delta")
            refusal = delta.get("refusal") if isinstance(delta, Mapping) else None
            return refusal if isinstance(refusal, str) else ""
    return ""


# -- validation helpers -----------------------------------------------------------------------


def _sendable(body: Any) -> dict[str, Any]:
    """The body as an object, once all of it is known to be sendable as strict JSON."""
    data = _object(body, "body")
    problem = json_problem(data, "")
    if problem is not None:
        raise WireError(problem)
    return data


def _model(data: Mapping[str, Any]) -> str:
    """The route or `provider:model` asked for: it keys routes, breakers and metrics."""
    model = _string(data, "model")
    problem = model_name_problem(model)
    if problem is not None:
        raise WireError(f"model: {problem}")
    return model


def _identifier(value: str, where: str) -> str:
    problem = identifier_problem(value)
    if problem is not None:
        raise WireError(f"{where}: {problem}")
    return value


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


def _strings(data: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = data.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(s, str) for s in value):
        raise WireError(f"{key}: expected a list of strings")
    return tuple(value)


def _stream(data: Mapping[str, Any]) -> bool:
    value = data.get("stream", False)
    if not isinstance(value, bool):
        raise WireError(f"stream: expected true or false, got {value!r}")
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
    number = float(value) if isinstance(value, float) or abs(value) < 2**1023 else math.inf
    if not math.isfinite(number):
        raise WireError(f"{key}: not a finite number")
    return number


def _content(value: Any, where: str) -> str | tuple[dict[str, Any], ...]:
    if isinstance(value, str):
        return value
    if not isinstance(value, list):
        raise WireError(f"{where}: expected a string or a list of content blocks")
    for j, block in enumerate(value):
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise WireError(f"{where}[{j}]: expected an object with a string type")
        if block["type"] == "text" and not isinstance(block.get("text"), str):
            raise WireError(f"{where}[{j}].text: expected a string")
        for key in _BLOCK_IDS.get(block["type"], ()):
            if isinstance(block.get(key), str):
                _identifier(block[key], f"{where}[{j}].{key}")
        if block["type"] == "tool_result" and block.get("content") is not None:
            _content(block["content"], f"{where}[{j}].content")  # sent as text or blocks
    return tuple(value)


_BLOCK_IDS = {"tool_use": ("id", "name"), "tool_result": ("tool_use_id",)}
"""Identifiers in content blocks, sent as ids and names."""


def _text(value: Any, where: str) -> str:
    """Text, given as a string or as a list of text blocks."""
    content = _content(value, where)
    if isinstance(content, str):
        return content
    for j, block in enumerate(content):
        if block["type"] != "text":
            raise WireError(f"{where}[{j}].type: expected text, got {block['type']!r}")
    return "".join(block["text"] for block in content)


def _tools(data: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    raw_tools = data.get("tools")
    if raw_tools is None:
        return ()
    if not isinstance(raw_tools, list):
        raise WireError("tools: expected a list")
    tools = []
    for i, raw in enumerate(raw_tools):
        try:
            spec = tool_spec(_object(raw, f"tools[{i}]"))
        except WireError:
            raise
        except ValueError as exc:
            raise _at(f"tools[{i}]", exc) from None
        function = raw.get("function") if raw.get("type") == "function" else None
        where = f"tools[{i}].function.name" if isinstance(function, dict) else f"tools[{i}].name"
        _identifier(spec["name"], where)
        tools.append(spec)
    return tuple(tools)


def _choice(value: Any) -> dict[str, Any] | None:
    if value is not None and not isinstance(value, str | dict):
        raise WireError("tool_choice: expected a string or a JSON object")
    try:
        choice = tool_choice_spec(value)
    except ValueError as exc:
        raise _at("tool_choice", exc) from None
    if choice is not None and isinstance(choice.get("name"), str):
        _identifier(choice["name"], "tool_choice.name")
    return choice


def _at(where: str, exc: ValueError) -> WireError:
    """A models.py validation error placed at its field: `tools[1]` + `name: ...`."""
    message = str(exc)
    joiner = ": " if message.startswith("expected") else "."
    return WireError(f"{where}{joiner}{message}")
