"""The OpenAI API's wire format: chat completions, chunks, embeddings and error bodies."""

from __future__ import annotations

import base64
import struct
import time
import uuid
from typing import Any

from resilience.chaos.answers import answer, embedding, sse, token_count, words
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


def _usage(prompt: str, text: str) -> dict[str, int]:
    prompt_tokens, completion_tokens = token_count(prompt), token_count(text)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def completion(model: str, prompt: str) -> dict[str, Any]:
    """A complete, healthy ChatCompletion."""
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
                "message": {"role": "assistant", "content": text, "refusal": None},
                "logprobs": None,
            }
        ],
        "usage": _usage(prompt, text),
    }


def stream(model: str, prompt: str, fault: Fault, *, include_usage: bool) -> Frames:
    """A healthy completion as `chat.completion.chunk` events, `[DONE]` last."""
    completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
    created = int(time.time())
    text = answer(prompt)

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> bytes:
        return sse(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
        )

    def choice(delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        return [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}]

    # with include_usage every chunk carries "usage": null until the last one, as the API does
    nulls: dict[str, Any] = {"usage": None} if include_usage else {}
    tail = [chunk(choice({}, "stop"), **nulls)]
    if include_usage:
        tail.append(chunk([], usage=_usage(prompt, text)))
    tail.append(sse("[DONE]"))
    body = error(500, fault.error_type or STREAM_ERROR_TYPE, fault.error_code, fault.message)
    return Frames(
        head=(chunk(choice({"role": "assistant", "content": ""}), **nulls),),
        content=tuple(chunk(choice({"content": w}), **nulls) for w in words(text)),
        tail=tuple(tail),
        error=sse(body),
        garbled=sse("{chaos: not json"),
    )


def embeddings(model: str, inputs: list[str], encoding_format: str) -> dict[str, Any]:
    """One vector per input, as float lists or base64 little-endian float32."""
    data = []
    for i, text in enumerate(inputs):
        vector = embedding(text)
        value: Any = vector
        if encoding_format == "base64":
            value = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
        data.append({"object": "embedding", "index": i, "embedding": value})
    tokens = sum(token_count(t) for t in inputs)
    return {
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
