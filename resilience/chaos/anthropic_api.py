"""The Anthropic Messages API's wire format: messages, SSE events, token counts and errors."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resilience.chaos.answers import (
    answer,
    last_user_text,
    sse,
    stable_id,
    texts_in,
    token_count,
    words,
)
from resilience.chaos.asks import (
    ToolCall,
    anthropic_structured_text,
    anthropic_thinking,
    anthropic_tool_call,
)
from resilience.chaos.frames import Frames, split
from resilience.chaos.prompt_cache import CacheUse
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


@dataclass(frozen=True, slots=True)
class Reply:
    """A healthy Message, as the request body shapes it."""

    prompt: str
    text: str | None
    """The text block: the plain answer, or JSON for an `output_config.format`; None when
    the answer is a forced tool call."""
    tool: ToolCall | None
    thinking: str | None
    """The thinking block's text ("" when its display is omitted); None: no thinking block."""
    cache: CacheUse

    @property
    def signature(self) -> str:
        """Opaque like Anthropic's, and the same for the same thinking."""
        digest = hashlib.sha256(f"chaos thinking: {self.thinking}".encode()).digest()
        return base64.b64encode(digest * 2).decode()

    def blocks(self) -> list[dict[str, Any]]:
        blocks: list[dict[str, Any]] = []
        if self.thinking is not None:
            blocks.append(
                {"type": "thinking", "thinking": self.thinking, "signature": self.signature}
            )
        if self.tool:
            tool_id = stable_id("toolu_", self.tool.name, self.tool.arguments_json)
            blocks.append(
                {
                    "type": "tool_use",
                    "id": tool_id,
                    "name": self.tool.name,
                    "input": self.tool.arguments,
                }
            )
        else:
            blocks.append({"type": "text", "text": self.text or ""})
        return blocks

    @property
    def stop_reason(self) -> str:
        return "tool_use" if self.tool else "end_turn"

    def usage(self, output_tokens: int | None = None) -> dict[str, int]:
        """Input (and cache) tokens, and the output counted on every block's words."""
        if output_tokens is None:
            output = [self.thinking or "", self.tool.arguments_json if self.tool else self.text]
            output_tokens = token_count(" ".join(t for t in output if t))
        return {
            "input_tokens": token_count(self.prompt),
            "output_tokens": output_tokens,
            **self.cache.usage(),
        }


def reply(body: Mapping[str, Any], cache: CacheUse) -> Reply:
    """What a healthy answer to `body` says; `cache` is what its prompt caching did."""
    prompt = last_user_text(body.get("messages"))
    tool = anthropic_tool_call(body)
    display = anthropic_thinking(body)
    thinking = None if display is None else ""
    if display == "summarized":
        thinking = f"The user wrote: {prompt[:40]}. A short answer will do."
    text = None if tool else anthropic_structured_text(body) or answer(prompt)
    return Reply(prompt=prompt, text=text, tool=tool, thinking=thinking, cache=cache)


def count_tokens(body: Mapping[str, Any]) -> dict[str, Any]:
    """`/v1/messages/count_tokens`: the words of every text in the system prompt and messages."""
    texts = [*texts_in(body.get("system")), *texts_in(body.get("messages"))]
    return {"input_tokens": token_count(" ".join(texts))}


def message(model: str, reply: Reply) -> dict[str, Any]:
    """A complete, healthy Message."""
    return {
        "id": _id("msg"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": reply.blocks(),
        "stop_reason": reply.stop_reason,
        "stop_sequence": None,
        "usage": reply.usage(),
    }


def _event(data: dict[str, Any]) -> bytes:
    return sse(data, data["type"])


def _block_events(index: int, block: dict[str, Any]) -> list[tuple[bytes, bool]]:
    """One content block as its start, its deltas (the content chunks) and its stop."""
    kind = block["type"]
    opening: dict[str, Any]
    deltas: list[dict[str, Any]]
    if kind == "thinking":
        opening = {"type": "thinking", "thinking": "", "signature": ""}
        deltas = [{"type": "thinking_delta", "thinking": w} for w in words(block["thinking"])]
        deltas = [d for d in deltas if d["thinking"]]
    elif kind == "tool_use":
        opening = {**block, "input": {}}
        pieces = words(json.dumps(block["input"]))
        deltas = [{"type": "input_json_delta", "partial_json": p} for p in ["", *pieces]]
    else:
        opening = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": w} for w in words(block["text"])]
    start = {"type": "content_block_start", "index": index, "content_block": opening}
    events = [(_event(start), False)]
    events += [
        (_event({"type": "content_block_delta", "index": index, "delta": d}), True) for d in deltas
    ]
    if kind == "thinking":
        signature = {"type": "signature_delta", "signature": block["signature"]}
        events.append(
            (_event({"type": "content_block_delta", "index": index, "delta": signature}), False)
        )
    events.append((_event({"type": "content_block_stop", "index": index}), False))
    return events


def stream(model: str, reply: Reply, fault: Fault) -> Frames:
    """A healthy Message as SSE events, and the error event a fault may put in.

    Each block streams as Anthropic streams it: thinking as `thinking_delta`s and a
    `signature_delta`, text a word a `text_delta`, a tool call's input as `input_json_delta`s.
    """
    start = message(model, reply)
    start.update(content=[], stop_reason=None)
    start["usage"] = reply.usage(output_tokens=1)
    events = [(_event({"type": "message_start", "message": start}), False)]
    for index, block in enumerate(reply.blocks()):
        block_events = _block_events(index, block)
        if index == 0:  # as Anthropic does: a ping right after the first block's start
            block_events.insert(1, (_event({"type": "ping"}), False))
        events += block_events
    delta = {"stop_reason": reply.stop_reason, "stop_sequence": None}
    usage = {"output_tokens": reply.usage()["output_tokens"]}
    events += [
        (_event({"type": "message_delta", "delta": delta, "usage": usage}), False),
        (_event({"type": "message_stop"}), False),
    ]
    body, _ = error(529, fault.error_type or STREAM_ERROR_TYPE, fault.message, fault.error_code)
    return split(
        events,
        error=sse(body, "error"),
        garbled=sse("{chaos: not json", "content_block_delta"),
    )
