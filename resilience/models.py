"""The normalised request and response every provider adapter converts to and from.

Small on purpose: what both Anthropic's Messages API and OpenAI's chat
completions can express. Tool definitions, tool calls and provider-specific
options pass through as JSON-able mappings (`tools`, `content`, `extra`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant", "system", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "other"]
JSON = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | tuple[JSON, ...]
    """Plain text, or content blocks (text, tool_use, tool_result...) passed through."""

    @property
    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(str(b.get("text", "")) for b in self.content if b.get("type") == "text")


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    messages: tuple[Message, ...]
    system: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    tools: tuple[JSON, ...] = ()
    tool_choice: JSON | str | None = None
    stop: tuple[str, ...] = ()
    metadata: JSON = field(default_factory=dict)
    extra: JSON = field(default_factory=dict)
    """Provider-specific body fields, sent as the SDK call's `extra_body`."""

    def __post_init__(self) -> None:
        if not self.messages:
            raise ValueError("messages: at least one message is required")


@dataclass(frozen=True, slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatResponse:
    text: str
    content: tuple[JSON, ...]
    finish_reason: FinishReason
    raw_finish_reason: str | None
    usage: Usage
    provider: str
    model: str
    response_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatChunk:
    """One piece of a stream; the last one carries the finish reason and usage."""

    text_delta: str = ""
    finish_reason: FinishReason | None = None
    usage: Usage | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingRequest:
    inputs: tuple[str, ...]
    dimensions: int | None = None

    def __post_init__(self) -> None:
        if not self.inputs:
            raise ValueError("inputs: at least one input is required")


@dataclass(frozen=True, slots=True, kw_only=True)
class EmbeddingResponse:
    vectors: tuple[tuple[float, ...], ...]
    usage: Usage
    provider: str
    model: str


def finish_reason(raw: str | None) -> FinishReason:
    """Both providers' stop reasons, in one vocabulary."""
    return _FINISH.get(raw or "", "other")


_FINISH: dict[str, FinishReason] = {
    "stop": "stop",
    "end_turn": "stop",
    "stop_sequence": "stop",
    "length": "length",
    "max_tokens": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
}
