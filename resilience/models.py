"""The normalised request and response every provider adapter converts to and from.

Small on purpose: what both Anthropic's Messages API and OpenAI's chat
completions can express, so a route can fall back from one kind to the other.
Where a structure is needed the vocabulary is Anthropic's, because it is the one
already made of blocks:

    content blocks  {"type": "text", "text": ...}
                    {"type": "tool_use", "id": ..., "name": ..., "input": {...}}
                    {"type": "tool_result", "tool_use_id": ..., "content": str | [text blocks],
                     "is_error": bool (optional)}
    tools           {"name": ..., "description": ... (optional), "input_schema": {...}}
    tool_choice     {"type": "auto" | "any" | "none" | "tool", "name": ... (for "tool"),
                     "disable_parallel_tool_use": bool (optional)}

Adapters translate these to and from their SDK. Any other block (images, documents,
thinking...) or tool (a provider's server tools) passes through untouched: it reaches
an upstream of the kind whose shape it has, and is that upstream's to accept or
refuse. `extra` passes provider-specific body fields through the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

Role = Literal["user", "assistant", "system", "tool"]
FinishReason = Literal["stop", "length", "tool_calls", "content_filter", "other"]
JSON = Mapping[str, Any]
ROLES: tuple[Role, ...] = get_args(Role)


@dataclass(frozen=True, slots=True)
class Message:
    role: Role
    content: str | tuple[JSON, ...]
    """Plain text, or content blocks (text, tool_use, tool_result...) as JSON-able mappings."""

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise ValueError(f"role: expected one of {', '.join(ROLES)}, got {self.role!r}")
        if self.role == "tool" and isinstance(self.content, str):
            raise ValueError("content: a tool message carries tool_result blocks, not a string")

    @property
    def text(self) -> str:
        """The text blocks joined; tool calls and other blocks left out."""
        return self.content if isinstance(self.content, str) else text_of(self.content)


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatRequest:
    messages: tuple[Message, ...]
    system: str | None = None
    """Sent before any system-role message of `messages`."""
    max_tokens: int | None = None
    """None: the provider's default (Anthropic requires one: the adapter sends 1024)."""
    temperature: float | None = None
    top_p: float | None = None
    tools: tuple[JSON, ...] = ()
    """Normalised tool definitions (see the module docstring); OpenAI's
    `{"type": "function", ...}` shape is accepted too."""
    tool_choice: JSON | str | None = None
    """Normalised (see the module docstring); OpenAI's strings and shapes are accepted too."""
    stop: tuple[str, ...] = ()
    metadata: JSON = field(default_factory=dict)
    """Only `user_id` is sent (Anthropic `metadata.user_id`, OpenAI `user`)."""
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
    """The text blocks of `content`, joined."""
    content: tuple[JSON, ...]
    """Normalised blocks: text and tool_use (others as the provider gave them)."""
    finish_reason: FinishReason
    raw_finish_reason: str | None
    """The provider's own stop reason, for logs and for cases the vocabulary folds."""
    usage: Usage
    provider: str
    model: str
    response_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolCallDelta:
    """A piece of a streamed tool call, as OpenAI streams them.

    The first piece of a call carries `id` and `name`; every piece may add text to
    the call's JSON `arguments`. `index` counts tool calls within the answer.
    """

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChatChunk:
    """One piece of a stream; only the last one carries `finish_reason` (and usage, if known)."""

    text_delta: str = ""
    tool_calls: tuple[ToolCallDelta, ...] = ()
    finish_reason: FinishReason | None = None
    usage: Usage | None = None
    raw: JSON | None = None
    """The provider's own event, for what the fields above cannot say (thinking,
    citations, refusal deltas); None on chunks the fields describe fully."""


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
    """One vector per input, in input order."""
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
    "model_context_window_exceeded": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "tool_use": "tool_calls",
    "content_filter": "content_filter",
    "refusal": "content_filter",
}


def text_of(blocks: tuple[JSON, ...] | list[JSON]) -> str:
    return "".join(str(b.get("text", "")) for b in blocks if b.get("type") == "text")


def tool_spec(tool: JSON) -> dict[str, Any]:
    """A tool definition in the normalised shape, from it or from OpenAI's function shape."""
    if tool.get("type") == "function" and isinstance(tool.get("function"), Mapping):
        function = tool["function"]
        if not isinstance(function.get("name"), str):
            raise ValueError("function.name: expected a string")
        spec: dict[str, Any] = {
            "name": function["name"],
            "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
        }
        if isinstance(function.get("description"), str):
            spec["description"] = function["description"]
        return spec
    if not isinstance(tool.get("name"), str):
        raise ValueError("name: expected a string")
    if "input_schema" in tool and not isinstance(tool["input_schema"], Mapping):
        raise ValueError("input_schema: expected a JSON schema object")
    return dict(tool)  # normalised already, or a provider's own kind of tool: as it is


def tool_choice_spec(choice: JSON | str | None) -> dict[str, Any] | None:
    """A tool choice in the normalised shape, from it or from OpenAI's strings and shapes."""
    if choice is None:
        return None
    if isinstance(choice, str):
        if choice not in _OPENAI_CHOICES:
            raise ValueError(f"expected one of auto, none, required, got {choice!r}")
        return {"type": _OPENAI_CHOICES[choice]}
    function = choice.get("function")
    if choice.get("type") == "function" and isinstance(function, Mapping):
        if not isinstance(function.get("name"), str):
            raise ValueError("function.name: expected a string")
        return {"type": "tool", "name": function["name"]}
    kind = choice.get("type")
    if kind not in ("auto", "any", "none", "tool"):
        raise ValueError(f"type: expected one of auto, any, none, tool, got {kind!r}")
    if kind == "tool" and not isinstance(choice.get("name"), str):
        raise ValueError("name: expected a string for type 'tool'")
    return dict(choice)


_OPENAI_CHOICES = {"auto": "auto", "none": "none", "required": "any"}

UNPARSED = "_unparsed_arguments"
"""The key a tool_use block's `input` holds OpenAI arguments under when they are not a
JSON object (models do emit broken JSON); `tool_arguments` gives the text back unchanged."""


def tool_input(arguments: str) -> dict[str, Any]:
    """OpenAI's JSON-text tool arguments as a tool_use block's `input`."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        value = None
    return value if isinstance(value, dict) else {UNPARSED: arguments}


def tool_arguments(input_: Any) -> str:
    """A tool_use block's `input` as OpenAI's JSON-text tool arguments."""
    if isinstance(input_, Mapping) and set(input_) == {UNPARSED}:
        raw = input_[UNPARSED]
        if isinstance(raw, str):
            return raw
    return json.dumps(input_, separators=(",", ":"), ensure_ascii=False)
