"""Bodies and SSE frames in the exact wire formats of the Anthropic and OpenAI APIs."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import time
import uuid
from typing import Any

ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "permission_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
    500: "server_error",
    502: "server_error",
    503: "server_error",
    504: "server_error",
}


def answer(prompt: str) -> str:
    """The healthy answer: deterministic, several words long so it streams in several chunks."""
    return f"ok: {prompt[:40]} (answered by chaos)"


def words(text: str) -> list[str]:
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def last_user_text(messages: Any) -> str:
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def token_count(text: str) -> int:
    return max(1, len(text.split()))


def sse(data: Any, event: str | None = None) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


# -- Anthropic Messages API ------------------------------------------------------------------


def anthropic_message(model: str, prompt: str) -> dict[str, Any]:
    text = answer(prompt)
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": token_count(prompt), "output_tokens": token_count(text)},
    }


def anthropic_error(status: int, error_type: str | None, message: str | None) -> dict[str, Any]:
    kind = error_type or ANTHROPIC_ERROR_TYPES.get(status, "api_error")
    return {
        "type": "error",
        "error": {"type": kind, "message": message or f"chaos: {kind}"},
        "request_id": f"req_{uuid.uuid4().hex[:24]}",
    }


def anthropic_stream_head(model: str, prompt: str) -> list[bytes]:
    start = anthropic_message(model, prompt)
    start.update(content=[], stop_reason=None)
    start["usage"] = {"input_tokens": token_count(prompt), "output_tokens": 1}
    return [
        sse({"type": "message_start", "message": start}, "message_start"),
        sse(
            {
                "type": "content_block_start",
                "index": 0,
                "content_block": {"type": "text", "text": ""},
            },
            "content_block_start",
        ),
        sse({"type": "ping"}, "ping"),
    ]


def anthropic_delta(text: str) -> bytes:
    delta = {
        "type": "content_block_delta",
        "index": 0,
        "delta": {"type": "text_delta", "text": text},
    }
    return sse(delta, "content_block_delta")


def anthropic_stream_tail(output_tokens: int) -> list[bytes]:
    return [
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    ]


def anthropic_error_event(error_type: str | None, message: str | None) -> bytes:
    return sse(anthropic_error(529, error_type or "overloaded_error", message), "error")


# -- OpenAI chat completions and embeddings -----------------------------------------------------


def openai_completion(model: str, prompt: str) -> dict[str, Any]:
    text = answer(prompt)
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
                "logprobs": None,
            }
        ],
        "usage": {
            "prompt_tokens": token_count(prompt),
            "completion_tokens": token_count(text),
            "total_tokens": token_count(prompt) + token_count(text),
        },
    }


def openai_error(
    status: int, error_type: str | None, code: str | None, message: str | None
) -> dict[str, Any]:
    kind = error_type or OPENAI_ERROR_TYPES.get(status, "invalid_request_error")
    return {
        "error": {
            "message": message or f"chaos: {kind}",
            "type": kind,
            "param": None,
            "code": code,
        }
    }


def openai_chunk(
    completion_id: str, model: str, delta: dict[str, Any], finish: str | None = None
) -> bytes:
    return sse(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
        }
    )


def openai_usage_chunk(completion_id: str, model: str, prompt: str, text: str) -> bytes:
    return sse(
        {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "choices": [],
            "usage": {
                "prompt_tokens": token_count(prompt),
                "completion_tokens": token_count(text),
                "total_tokens": token_count(prompt) + token_count(text),
            },
        }
    )


def openai_error_event(error_type: str | None, code: str | None, message: str | None) -> bytes:
    return sse(openai_error(500, error_type or "server_error", code, message))


def embedding(text: str, dims: int = 8) -> list[float]:
    """A deterministic unit-scale vector derived from the text."""
    digest = hashlib.sha256(text.encode()).digest()
    return [round((b - 128) / 128, 6) for b in digest[:dims]]


def openai_embeddings(model: str, inputs: list[str], encoding: str) -> dict[str, Any]:
    data = []
    for i, text in enumerate(inputs):
        vector = embedding(text)
        value: Any = vector
        if encoding == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(token_count(t) for t in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
