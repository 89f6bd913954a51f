"""The Anthropic Messages API's wire format: messages, SSE events and error bodies."""

from __future__ import annotations

import uuid
from typing import Any

from resilience.chaos.answers import answer, sse, token_count, words
from resilience.chaos.frames import Frames
from resilience.chaos.script import Fault

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    408: "timeout_error",
    409: "conflict_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
STREAM_ERROR_TYPE = "overloaded_error"


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def error(
    status: int, error_type: str | None, message: str | None, code: str | None = None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The error body for `status`, and its `request-id` header.

    A `code` goes in `error.details.error_code`, where the SDK picks its subclass from.
    """
    fallback = "api_error" if status >= 500 else "invalid_request_error"
    kind = error_type or ERROR_TYPES.get(status, fallback)
    request_id = _id("req")
    detail: dict[str, Any] = {"type": kind, "message": message or f"chaos: {kind}"}
    if code is not None:
        detail["details"] = {"error_code": code}
    body = {"type": "error", "error": detail, "request_id": request_id}
    return body, {"request-id": request_id}


def message(model: str, prompt: str) -> dict[str, Any]:
    """A complete, healthy Message."""
    text = answer(prompt)
    return {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": token_count(prompt), "output_tokens": token_count(text)},
    }


def stream(model: str, prompt: str, fault: Fault) -> Frames:
    """A healthy Message as SSE events, and the error event a fault may put in."""
    start = message(model, prompt)
    start.update(content=[], stop_reason=None)
    start["usage"] = {"input_tokens": token_count(prompt), "output_tokens": 1}
    text = answer(prompt)
    empty = {"type": "text", "text": ""}
    block = {"type": "content_block_start", "index": 0, "content_block": empty}
    head = (
        sse({"type": "message_start", "message": start}, "message_start"),
        sse(block, "content_block_start"),
        sse({"type": "ping"}, "ping"),
    )
    content = tuple(
        sse(
            {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}},
            "content_block_delta",
        )
        for w in words(text)
    )
    tail = (
        sse({"type": "content_block_stop", "index": 0}, "content_block_stop"),
        sse(
            {
                "type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": token_count(text)},
            },
            "message_delta",
        ),
        sse({"type": "message_stop"}, "message_stop"),
    )
    body, _ = error(529, fault.error_type or STREAM_ERROR_TYPE, fault.message, fault.error_code)
    return Frames(
        head=head,
        content=content,
        tail=tail,
        error=sse(body, "error"),
        garbled=sse("{chaos: not json", "content_block_delta"),
    )
