"""The OpenAI API's wire format: chat completions, chunks, embeddings and error bodies."""

from __future__ import annotations

import base64
import struct
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resilience.chaos.answers import (
    EMBEDDING_DIMS,
    answer,
    embedding,
    last_user_text,
    sse,
    stable_id,
    token_count,
    words,
)
from resilience.chaos.asks import ToolCall, openai_structured_text, openai_tool_call
from resilience.chaos.frames import Frames
from resilience.chaos.script import Fault

ERROR_TYPES: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("permission_error", None),
    404: ("invalid_request_error", "model_not_found"),
    409: ("invalid_request_error", None),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}
"""(type, code) by status; any other status >= 500 is a `server_error`."""
STREAM_ERROR_TYPE = "server_error"


def error(
    status: int, error_type: str | None, code: str | None, message: str | None
) -> dict[str, Any]:
    """The error body for `status`; a given type or code replaces both defaults."""
    default_type, default_code = ERROR_TYPES.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    if error_type is not None or code is not None:
        default_type, default_code = error_type or default_type, code
    return {
        "error": {
            "message": message or f"chaos: {default_code or default_type}",
            "type": default_type,
            "param": None,
            "code": default_code,
        }
    }


SYSTEM_FINGERPRINT = "fp_chaos0000"
"""Sent with every answer and chunk, as OpenAI does (clients log it)."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A healthy chat answer, as the request body shapes it."""

    prompt: str
    text: str | None
    """The content: the plain answer, or JSON for a `response_format`; None for a tool call."""
    tool: ToolCall | None
    """The call `tool_choice` forces, if it does."""
    top_logprobs: int | None
    """How many alternatives each token's logprobs list; None when `logprobs` was not asked."""
    service_tier: str | None

    @property
    def output(self) -> str:
        """What the completion tokens are counted on."""
        return self.tool.arguments_json if self.tool else self.text or ""

    def top(self) -> dict[str, Any]:
        """The fields every answer and chunk carries beside `id`, `object`, `created`, `model`."""
        tier = {} if self.service_tier is None else {"service_tier": self.service_tier}
        return {**tier, "system_fingerprint": SYSTEM_FINGERPRINT}


def reply(body: Mapping[str, Any]) -> Reply:
    """What a healthy answer to `body` says."""
    prompt = last_user_text(body.get("messages"))
    tool = openai_tool_call(body)
    text = None if tool else openai_structured_text(body, prompt) or answer(prompt)
    top = body.get("top_logprobs")
    count = top if isinstance(top, int) and not isinstance(top, bool) and top > 0 else 0
    tier = body.get("service_tier")
    return Reply(
        prompt=prompt,
        text=text,
        tool=tool,
        top_logprobs=count if body.get("logprobs") is True else None,
        service_tier=tier if isinstance(tier, str) else None,
    )


def _usage(reply: Reply) -> dict[str, Any]:
    prompt_tokens, completion_tokens = token_count(reply.prompt), token_count(reply.output)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _tool_call(call: ToolCall) -> dict[str, Any]:
    return {
        "id": stable_id("call_", call.name, call.arguments_json),
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments_json},
    }


def _logprob(token: str, position: int, alternatives: int) -> dict[str, Any]:
    """One token's logprobs: made up, deterministic, the token itself the likeliest."""
    logprob = -(1 + position % 5) / 100
    top = [{"token": token, "logprob": logprob, "bytes": list(token.encode())}][:alternatives]
    for k in range(1, alternatives):
        other = f" alt{k}"
        top.append({"token": other, "logprob": logprob - k, "bytes": list(other.encode())})
    return {"token": token, "logprob": logprob, "bytes": list(token.encode()), "top_logprobs": top}


def _logprobs(reply: Reply, tokens: list[str], first: int = 0) -> dict[str, Any] | None:
    if reply.top_logprobs is None or reply.text is None:
        return None
    content = [_logprob(t, first + i, reply.top_logprobs) for i, t in enumerate(tokens)]
    return {"content": content, "refusal": None}


def completion(model: str, reply: Reply) -> dict[str, Any]:
    """A complete, healthy ChatCompletion."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text, "refusal": None}
    if reply.tool:
        message["tool_calls"] = [_tool_call(reply.tool)]
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "tool_calls" if reply.tool else "stop",
                "message": message,
                "logprobs": _logprobs(reply, words(reply.text or "")),
            }
        ],
        "usage": _usage(reply),
        **reply.top(),
    }


def stream(model: str, reply: Reply, fault: Fault, *, include_usage: bool) -> Frames:
    """A healthy completion as `chat.completion.chunk` events, `[DONE]` last.

    Text comes a word a chunk; a tool call as OpenAI streams one: its id and name in the
    first chunk, then its arguments in pieces.
    """
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    top = reply.top()

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                **top,
                "choices": choices,
                **extra,
            }
        )

    def choice(
        delta: dict[str, Any], finish: str | None = None, logprobs: Any = None
    ) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": logprobs}]

    # with include_usage every chunk carries "usage": null until the last one, as the API does
    nulls: dict[str, Any] = {"usage": None} if include_usage else {}
    if reply.tool:
        call = _tool_call(reply.tool)
        opening = {**call, "index": 0, "function": {"name": reply.tool.name, "arguments": ""}}
        first = {"role": "assistant", "content": None, "tool_calls": [opening], "refusal": None}
        pieces = words(reply.tool.arguments_json)
        content = [
            chunk(choice({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}), **nulls)
            for p in pieces
        ]
    else:
        first = {"role": "assistant", "content": "", "refusal": None}
        pieces = words(reply.text or "")
        content = [
            chunk(choice({"content": p}, logprobs=_logprobs(reply, [p], i)), **nulls)
            for i, p in enumerate(pieces)
        ]
    tail = [chunk(choice({}, "tool_calls" if reply.tool else "stop"), **nulls)]
    if include_usage:
        tail.append(chunk([], usage=_usage(reply)))
    tail.append(sse("[DONE]"))
    body = error(500, fault.error_type or STREAM_ERROR_TYPE, fault.error_code, fault.message)
    return Frames(
        head=(chunk(choice(first), **nulls),),
        content=tuple(content),
        tail=tuple(tail),
        error=sse(body),
        garbled=sse("{chaos: not json"),
    )


def embeddings(model: str, body: Mapping[str, Any]) -> dict[str, Any]:
    """One vector per input, as float lists or base64 little-endian float32.

    `input` is a string, a list of strings, a token array or a list of token arrays (a
    token array counts its length in tokens); `dimensions` sets the vectors' length.
    """
    dims = body.get("dimensions")
    size = dims if isinstance(dims, int) and not isinstance(dims, bool) and dims > 0 else None
    base64_wanted = body.get("encoding_format") == "base64"
    data, tokens = [], 0
    for i, (text, count) in enumerate(_inputs(body.get("input"))):
        vector = embedding(text, size or EMBEDDING_DIMS)
        value: Any = vector
        if base64_wanted:
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
        tokens += count
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def _inputs(raw: Any) -> list[tuple[str, int]]:
    """Each input as the text its vector is made from, and its token count."""
    if isinstance(raw, str):
        return [(raw, token_count(raw))]
    if not isinstance(raw, list):
        return []
    if raw and all(_is_token(t) for t in raw):
        return [_token_array(raw)]
    return [
        _token_array(item)
        if isinstance(item, list) and all(_is_token(t) for t in item)
        else (str(item), token_count(str(item)))
        for item in raw
    ]


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _token_array(tokens: list[int]) -> tuple[str, int]:
    return "tokens:" + ",".join(map(str, tokens)), len(tokens)
