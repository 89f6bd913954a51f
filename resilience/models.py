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
import math
import re
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
    return "".join(
        str(b.get("text", "")) for b in blocks if isinstance(b, Mapping) and b.get("type") == "text"
    )


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
    """OpenAI's JSON-text tool arguments as a tool_use block's `input`.

    Arguments that parse to something strict JSON cannot carry (NaN, 1e400, an escaped
    lone surrogate) stay unparsed text, like broken JSON: the text itself can travel."""
    try:
        value = json.loads(arguments, parse_constant=_refuse_constant) if arguments.strip() else {}
    except (ValueError, RecursionError):
        value = None
    if isinstance(value, dict) and json_problem(value, "input") is None:
        return value
    return {UNPARSED: arguments}


def tool_arguments(input_: Any) -> str:
    """A tool_use block's `input` as OpenAI's JSON-text tool arguments."""
    if isinstance(input_, Mapping) and set(input_) == {UNPARSED}:
        raw = input_[UNPARSED]
        if isinstance(raw, str):
            return raw
    return json.dumps(input_, separators=(",", ":"), ensure_ascii=False)


# -- what can travel ----------------------------------------------------------------------------
#
# A request is sent as strict JSON in UTF-8: a lone surrogate, NaN or an infinity cannot be
# encoded, and an SDK that meets one fails before anything is sent. These checks name the
# place, so the caller hears what to fix instead of a provider being blamed.

MAX_JSON_DEPTH = 64
"""Nesting deeper than this is refused: no real request needs it, and the checks recurse."""
MAX_INT_BITS = 14_000
"""Python refuses to write integers of more than 4300 digits (about 14,284 bits) as text."""
MAX_NAME_LENGTH = 256

_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
MODEL_NAME = re.compile(r"[A-Za-z0-9._:/@-]{1,256}")
"""Model ids as providers spell them: `gpt-4.1-2025-04-14`, `claude-sonnet-4-6@20250514`,
`accounts/fireworks/models/llama-v3p1-8b-instruct`, `llama3.1:8b`."""


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def shown(text: str, limit: int = 64) -> str:
    """`text` safe to put in a message: unprintable characters escaped, cut at `limit`."""
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    if text.isprintable():  # surrogates and control characters are not
        return text
    return "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in text)


def _encodes(text: str) -> bool:
    """Whether UTF-8 can carry `text`: only a surrogate code point stops it. Encoding is
    several times faster than searching for one, and free for ASCII (known in O(1))."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def text_problem(text: str) -> str | None:
    """Why `text` cannot be sent as UTF-8 (a lone surrogate), or None."""
    return None if _encodes(text) else "lone surrogate"


def identifier_problem(text: str) -> str | None:
    """Why `text` cannot serve as an id or a name (a control character or lone surrogate)."""
    if _CONTROL.search(text) is not None:
        return "control character"
    return text_problem(text)


def model_name_problem(name: str) -> str | None:
    """Why `name` cannot be a model id or `provider:model`, or None."""
    if MODEL_NAME.fullmatch(name) is not None:
        return None
    return f"expected 1 to {MAX_NAME_LENGTH} letters, digits and . - _ : / @"


def json_problem(value: object, where: str) -> str | None:
    """The first place in `value` that strict JSON in UTF-8 cannot carry, and why, as
    `messages[0].content: lone surrogate`; None when all of it can travel. `where` is the
    path of `value` itself ("" for a whole body)."""
    found = _problem(value, 0)
    if found is None:
        return None
    path, problem = found
    at = (where + "".join(reversed(path))).removeprefix(".") or "body"
    return f"{at}: {problem}"


def _problem(value: object, depth: int) -> tuple[list[str], str] | None:
    """(path segments innermost first, problem); the path is built only on failure."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        return None if _encodes(value) else ([], "lone surrogate")
    if isinstance(value, int):
        return None if value.bit_length() <= MAX_INT_BITS else ([], "integer too large")
    if isinstance(value, float):
        return None if math.isfinite(value) else ([], "not a finite number")
    if depth >= MAX_JSON_DEPTH:
        return [], f"nested deeper than {MAX_JSON_DEPTH} levels"
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            found = _problem(item, depth + 1)
            if found is not None:
                found[0].append(f"[{i}]")
                return found
        return None
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return [], "object keys must be strings"
            found = _problem(key, depth + 1)
            if found is not None:
                return [f".{shown(key)}"], "lone surrogate in a key"
            found = _problem(item, depth + 1)
            if found is not None:
                found[0].append(f".{shown(key)}")
                return found
        return None
    return [], f"not a JSON value ({type(value).__name__})"


def request_problem(request: ChatRequest | EmbeddingRequest) -> str | None:
    """The first field of a request that cannot be sent, and why; None when all can.

    Walks the whole request: for diagnosis after a failure, not for every call."""
    if isinstance(request, EmbeddingRequest):
        return json_problem(list(request.inputs), "inputs")
    for i, message in enumerate(request.messages):
        content: object = message.content
        found = json_problem(content, f"messages[{i}].content")
        if found is not None:
            return found
    fields: dict[str, object] = {
        "system": request.system,
        "temperature": request.temperature,
        "top_p": request.top_p,
        "tools": request.tools,
        "tool_choice": request.tool_choice,
        "stop": request.stop,
        "metadata": request.metadata,
        "extra": request.extra,
    }
    for name, value in fields.items():
        found = json_problem(value, name)
        if found is not None:
            return found
    return None
