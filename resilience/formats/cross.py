"""Requests that cross formats, and their answers back.

Only a request sent to a provider of the other kind comes here: an OpenAI chat body for
an Anthropic-kind provider, an Anthropic Messages body for an OpenAI-kind one. A body in
the target's own format travels as it is (`resilience.providers.native`).

Every field with a counterpart in the target's API is mapped, images included; a field
without one raises `CannotCarry` naming it as a path (`messages[2].content[1].input_audio`),
and the client skips that target without a call. Nothing is dropped silently. A field
whose value asks for nothing (null, false, a penalty of 0, `n: 1`, `modalities: ["text"]`)
has nothing to carry. The README's table says, field by field, what crosses and what does
not; tests/formats/test_cross_*.py hold this module to it.

The checks run before the body is parsed (`resilience.formats.wire`), so a field valid in
its own format but foreign to the target is named as such rather than refused as invalid;
a body that is invalid in its own format raises `WireError`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from resilience.formats.wire import (
    AnthropicStreamWriter,
    OpenAIStreamWriter,
    WireError,
    chat_request_from_anthropic,
    chat_request_from_openai,
    chat_response_to_anthropic,
    chat_response_to_openai,
    embedding_response_to_openai,
)
from resilience.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    Message,
    identifier_problem,
    text_of,
)
from resilience.providers.native import NativeApi
from resilience.providers.settings import ProviderKind


class CannotCarry(ValueError):
    """A request field the target's API has no counterpart for: `str()` is "<field>: <why>"."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why

    def __reduce__(self) -> tuple[type[CannotCarry], tuple[str, str]]:
        return type(self), (self.field, self.why)


class FrameWriter(Protocol):
    """Normalised chunks as SSE frames of one format (`wire.OpenAIStreamWriter`, ...)."""

    def start(self) -> bytes: ...
    def chunk(self, chunk: ChatChunk) -> bytes: ...
    def end(self) -> bytes: ...
    def error(self, message: str, code: str) -> bytes: ...


def carried_request(
    api: NativeApi, body: Mapping[str, Any], kind: ProviderKind
) -> ChatRequest | EmbeddingRequest:
    """The request as the normalised model, for a provider of `kind` (the other kind).

    Raises `CannotCarry` naming the first field that cannot cross, `WireError` for a body
    that is invalid in its own format."""
    if not isinstance(body, Mapping):
        raise WireError("body: expected a JSON object")
    if api == "openai.chat" and kind == "anthropic":
        return _openai_to_anthropic(body)
    if api == "anthropic.messages" and kind == "openai":
        return _anthropic_to_openai(body)
    if api == "openai.embeddings" and kind == "anthropic":
        raise CannotCarry("input", "an Anthropic-kind provider has no embeddings API")
    if api == "anthropic.count_tokens" and kind == "openai":
        raise CannotCarry("count_tokens", "an OpenAI-kind provider has no token counting API")
    raise ValueError(f"{api} to a provider of kind {kind} crosses no format: send it as it is")


def answer_body(
    api: NativeApi,
    response: ChatResponse | EmbeddingResponse,
    *,
    model: str,
    body: Mapping[str, Any],
) -> dict[str, Any]:
    """A normalised answer in the request's format: usage as input/output tokens (cached
    tokens are not in the normalised `Usage`, so neither format's answer shows them)."""
    if api == "openai.chat" and isinstance(response, ChatResponse):
        return chat_response_to_openai(response, model=model)
    if api == "anthropic.messages" and isinstance(response, ChatResponse):
        return chat_response_to_anthropic(response, model=model)
    if api == "openai.embeddings" and isinstance(response, EmbeddingResponse):
        encoding = body.get("encoding_format")
        return embedding_response_to_openai(
            response,
            model=model,
            encoding_format=encoding if isinstance(encoding, str) else "float",
        )
    raise ValueError(f"no {api} answer from a {type(response).__name__}")


def frame_writer(api: NativeApi, body: Mapping[str, Any], *, model: str) -> FrameWriter:
    """The stream writer for the request's format; OpenAI's honours
    `stream_options.include_usage` (a last chunk of `choices: []` and the usage)."""
    if api == "openai.chat":
        options = body.get("stream_options")
        asked = isinstance(options, Mapping) and options.get("include_usage") is True
        return OpenAIStreamWriter(model, include_usage=asked)
    if api == "anthropic.messages":
        return AnthropicStreamWriter(model)
    raise ValueError(f"stream: {api} does not stream")


# -- shared ---------------------------------------------------------------------------------

Check = Callable[[Any], bool]
"""Whether a field's value asks for nothing the target lacks (so nothing is lost)."""


def _never(value: Any) -> bool:
    return False


def _zero(value: Any) -> bool:
    return value == 0 and not isinstance(value, bool)


def _false(value: Any) -> bool:
    return value is False


def _empty(value: Any) -> bool:
    return value in ({}, [])


_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def _named(value: Any) -> str:
    """A block or tool type as a path segment; "type" when it cannot be one."""
    return value if isinstance(value, str) and _NAME.fullmatch(value) else "type"


@dataclasses.dataclass(frozen=True, slots=True)
class _Target:
    """The API a request crosses to, and why each field it lacks cannot go there."""

    api: str
    whys: Mapping[str, str]

    def why(self, key: str) -> str:
        return self.whys.get(key, f"no counterpart in {self.api}")


def _refuse(
    fields: Mapping[str, Any], allowed: Mapping[str, Check | None], where: str, to: _Target
) -> None:
    """CannotCarry for the first key of `fields` that is not null and not allowed as given
    (None in `allowed`: any value; a check: the values it accepts)."""
    for key, value in fields.items():
        if value is None:
            continue
        if key in allowed:
            check = allowed[key]
            if check is None or check(value):
                continue
        raise CannotCarry(f"{where}{key}", to.why(key))


# -- OpenAI chat -> Anthropic Messages ------------------------------------------------------

_TO_ANTHROPIC = _Target(
    "Anthropic's Messages API",
    {
        "n": "Anthropic answers with one choice",
        "logprobs": "Anthropic returns no log probabilities",
        "top_logprobs": "Anthropic returns no log probabilities",
        "seed": "Anthropic has no seeded sampling",
        "logit_bias": "Anthropic has no token biases",
        "presence_penalty": "Anthropic has no repetition penalties",
        "frequency_penalty": "Anthropic has no repetition penalties",
        "prediction": "Anthropic has no predicted outputs",
        "modalities": "Anthropic answers in text only",
        "audio": "Anthropic has no audio",
        "reasoning_effort": "OpenAI's effort levels are not translated to Anthropic's thinking",
        "verbosity": "Anthropic has no verbosity setting",
        "web_search_options": "Anthropic's web search is a server tool with its own answer blocks",
        "store": "Anthropic does not store completions",
        "metadata": "OpenAI's metadata tags stored completions; Anthropic's holds only user_id",
        "response_format": "structured output (json_schema, json_object) is not translated",
        "function_call": "legacy function calling has no counterpart (tools do)",
        "functions": "legacy function calling has no counterpart (tools do)",
        "prompt_cache_key": "Anthropic caches at cache_control breakpoints, no cache key",
        "prompt_cache_retention": "Anthropic caches at cache_control breakpoints, no retention",
        "prompt_cache_options": "Anthropic caches at cache_control breakpoints, no options",
        "moderation": "Anthropic has no moderation setting",
        "name": "Anthropic messages carry no participant name",
        "refusal": "Anthropic takes no refusal in the conversation",
        "input_audio": "Anthropic takes no audio input",
        "file": "OpenAI file parts are not translated to Anthropic documents",
        "custom": "Anthropic has no custom (free-text) tools",
        "include_obfuscation": "the translated stream carries no obfuscation field",
        "prompt_cache_breakpoint": "system and tool text is joined into one string: no breakpoint",
    },
)


def _openai_to_anthropic(body: Mapping[str, Any]) -> ChatRequest:
    _refuse(body, _OPENAI_TOP, "", _TO_ANTHROPIC)
    for i, message in enumerate(_items(body.get("messages"))):
        _check_openai_message(message, f"messages[{i}]")
    for i, tool in enumerate(_items(body.get("tools"))):
        _check_openai_tool(tool, f"tools[{i}]")
    _check_openai_choice(body.get("tool_choice"))
    _check_openai_user(body)
    # `n` is checked above; wire refuses any `n` but 1 as invalid, which it is not
    request = chat_request_from_openai({k: v for k, v in body.items() if k != "n"})[2]
    messages = tuple(
        _anthropic_message(parsed, raw)
        for parsed, raw in zip(request.messages, body["messages"], strict=True)
    )
    extra: dict[str, Any] = {}
    # the pinned Anthropic SDK has no sampling parameters: they travel as body fields
    for key in ("temperature", "top_p"):
        if body.get(key) is not None:
            extra[key] = body[key]
    if body.get("service_tier") is not None:
        extra["service_tier"] = _TIERS_TO_ANTHROPIC[body["service_tier"]]
    metadata = request.metadata
    if not metadata and isinstance(body.get("safety_identifier"), str):
        user = body["safety_identifier"]
        problem = identifier_problem(user)
        if problem is not None:
            raise WireError(f"safety_identifier: {problem}")
        metadata = {"user_id": user}
    return dataclasses.replace(
        request,
        messages=messages,
        tools=tuple(_anthropic_tool(t) for t in _items(body.get("tools"))),
        metadata=metadata,
        extra=extra,
    )


def _temperature(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 1:
        raise CannotCarry("temperature", "Anthropic accepts 0 to 1; above 1 has no counterpart")
    return True


def _stream_options(value: Any) -> bool:
    if isinstance(value, Mapping):
        allowed: dict[str, Check | None] = {"include_usage": None, "include_obfuscation": _false}
        _refuse(value, allowed, "stream_options.", _TO_ANTHROPIC)
    return True


_TIERS_TO_ANTHROPIC = {"auto": "auto", "default": "standard_only"}


def _tier(value: Any) -> bool:
    if not isinstance(value, str) or value not in _TIERS_TO_ANTHROPIC:
        raise CannotCarry("service_tier", "Anthropic has only auto and standard_only")
    return True


def _text_format(value: Any) -> bool:
    return isinstance(value, Mapping) and dict(value) == {"type": "text"}


_OPENAI_TOP: dict[str, Check | None] = {
    "model": None,
    "messages": None,
    "stream": None,
    "max_tokens": None,
    "max_completion_tokens": None,
    "temperature": _temperature,
    "top_p": None,
    "stop": None,
    "tools": None,
    "tool_choice": None,
    "parallel_tool_calls": None,
    "user": None,
    "safety_identifier": None,
    "stream_options": _stream_options,
    "service_tier": _tier,
    "n": lambda v: v == 1 and not isinstance(v, bool),
    "metadata": _empty,
    "store": _false,
    "logprobs": _false,
    "top_logprobs": _never,
    "seed": _never,
    "logit_bias": _empty,
    "presence_penalty": _zero,
    "frequency_penalty": _zero,
    "prediction": _never,
    "modalities": lambda v: v == ["text"],
    "audio": _never,
    "reasoning_effort": _never,
    "verbosity": _never,
    "web_search_options": _never,
    "response_format": _text_format,
    "function_call": _never,
    "functions": _empty,
}

_OPENAI_MESSAGE: dict[str, dict[str, Check | None]] = {
    "system": {"role": None, "content": None},
    "developer": {"role": None, "content": None},
    "user": {"role": None, "content": None},
    "assistant": {"role": None, "content": None, "tool_calls": None},
    "tool": {"role": None, "content": None, "tool_call_id": None},
}


def _check_openai_message(message: Any, where: str) -> None:
    if not isinstance(message, Mapping):
        return  # wire names it
    role = message.get("role")
    if role == "function":
        raise CannotCarry(f"{where}.role", "legacy function messages have no counterpart")
    if not isinstance(role, str) or role not in _OPENAI_MESSAGE:
        return  # wire names it
    _refuse(message, _OPENAI_MESSAGE[role], f"{where}.", _TO_ANTHROPIC)
    content = message.get("content")
    for j, part in enumerate(content if isinstance(content, list) else ()):
        _check_openai_part(part, f"{where}.content[{j}]", in_turn=role in ("user", "assistant"))
    for j, call in enumerate(_items(message.get("tool_calls"))):
        kind = call.get("type", "function")
        if kind != "function":
            raise CannotCarry(
                f"{where}.tool_calls[{j}].{_named(kind)}", _TO_ANTHROPIC.why("custom")
            )
        _refuse(
            call,
            {"id": None, "type": None, "function": None},
            f"{where}.tool_calls[{j}].",
            _TO_ANTHROPIC,
        )


def _check_openai_part(part: Any, where: str, *, in_turn: bool) -> None:
    if not isinstance(part, Mapping) or not isinstance(part.get("type"), str):
        return  # wire names it
    kind = part["type"]
    # a breakpoint in system or tool text has no place: that text is joined into one string
    breakpoint_: Check | None = None if in_turn else _never
    if kind == "text":
        _refuse(
            part,
            {"type": None, "text": None, "prompt_cache_breakpoint": breakpoint_},
            f"{where}.",
            _TO_ANTHROPIC,
        )
    elif kind == "image_url" and in_turn:
        _refuse(
            part,
            {"type": None, "image_url": None, "prompt_cache_breakpoint": None},
            f"{where}.",
            _TO_ANTHROPIC,
        )
        image = part.get("image_url")
        if isinstance(image, Mapping):
            _refuse(
                image,
                {"url": None, "detail": lambda d: d in ("auto", "high")},
                f"{where}.image_url.",
                _TO_ANTHROPIC,
            )
            _image_source(image.get("url"), f"{where}.image_url.url")
    else:
        raise CannotCarry(f"{where}.{_named(kind)}", _TO_ANTHROPIC.why(kind))


_DATA_URL = re.compile(r"data:(image/(?:png|jpeg|jpg|gif|webp));base64,(.*)", re.DOTALL)


def _image_source(url: Any, where: str) -> dict[str, Any]:
    """An OpenAI image URL as an Anthropic image source."""
    if not isinstance(url, str):
        raise WireError(f"{where}: expected a string")
    found = _DATA_URL.fullmatch(url)
    if found is not None:
        media = found[1].replace("/jpg", "/jpeg")
        return {"type": "base64", "media_type": media, "data": found[2]}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise CannotCarry(
        where, "Anthropic takes base64 data URLs of PNG, JPEG, GIF or WebP, or http(s) URLs"
    )


def _check_openai_tool(tool: Any, where: str) -> None:
    if not isinstance(tool, Mapping):
        return
    kind = tool.get("type")
    if kind != "function":
        raise CannotCarry(f"{where}.type", f"Anthropic has no {_named(kind)} tools")
    _refuse(tool, {"type": None, "function": None}, f"{where}.", _TO_ANTHROPIC)
    function = tool.get("function")
    if isinstance(function, Mapping):
        allowed: dict[str, Check | None] = {
            "name": None,
            "description": None,
            "parameters": None,
            "strict": None,
        }
        _refuse(function, allowed, f"{where}.function.", _TO_ANTHROPIC)


def _check_openai_choice(choice: Any) -> None:
    if isinstance(choice, Mapping) and choice.get("type") not in ("function", None):
        raise CannotCarry("tool_choice.type", f"Anthropic has no {_named(choice['type'])} choice")
    if isinstance(choice, Mapping):
        _refuse(choice, {"type": None, "function": None}, "tool_choice.", _TO_ANTHROPIC)


def _check_openai_user(body: Mapping[str, Any]) -> None:
    user, safety = body.get("user"), body.get("safety_identifier")
    if user is not None and safety is not None and user != safety:
        raise CannotCarry("safety_identifier", "Anthropic's metadata.user_id already holds user")


def _anthropic_message(parsed: Message, raw: Mapping[str, Any]) -> Message:
    """Wire's message with OpenAI content parts as Anthropic blocks."""
    if isinstance(parsed.content, str) or parsed.role in ("system", "tool"):
        return parsed
    return Message(role=parsed.role, content=tuple(_anthropic_block(b) for b in parsed.content))


def _anthropic_block(part: Mapping[str, Any]) -> dict[str, Any]:
    kind = part.get("type")
    if kind == "text":
        block: dict[str, Any] = {"type": "text", "text": part["text"]}
    elif kind == "image_url":
        image = part["image_url"]
        block = {"type": "image", "source": _image_source(image.get("url"), "image_url.url")}
    else:  # tool_use, made by wire from tool_calls
        return dict(part)
    if part.get("prompt_cache_breakpoint") is not None:
        block["cache_control"] = {"type": "ephemeral"}
    return block


def _anthropic_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    function = tool["function"]
    spec: dict[str, Any] = {
        "name": function["name"],
        "input_schema": function.get("parameters") or {"type": "object", "properties": {}},
    }
    if function.get("description") is not None:
        spec["description"] = function["description"]
    if function.get("strict") is True:
        spec["strict"] = True  # the pinned API: "guarantees schema validation"
    return spec


# -- Anthropic Messages -> OpenAI chat ------------------------------------------------------

_TO_OPENAI = _Target(
    "OpenAI's chat completions",
    {
        "thinking": "Anthropic extended thinking has no OpenAI counterpart",
        "redacted_thinking": "OpenAI takes no thinking blocks back",
        "top_k": "OpenAI has no top-k sampling",
        "mcp_servers": "OpenAI chat completions cannot call MCP servers",
        "container": "OpenAI chat completions have no code execution container",
        "context_management": "OpenAI chat completions do not edit the context",
        "output_config": "structured output and effort settings are not translated to OpenAI",
        "inference_geo": "OpenAI chat completions take no inference region",
        "speed": "OpenAI chat completions have no speed setting",
        "diagnostics": "OpenAI reports no cache diagnostics",
        "citations": "OpenAI takes no citations",
        "document": "OpenAI chat completions take no documents",
        "search_result": "OpenAI chat completions take no search results",
        "is_error": "OpenAI tool messages have no error flag",
        "input_examples": "OpenAI function tools take no input examples",
        "defer_loading": "OpenAI function tools cannot be loaded on demand",
        "allowed_callers": "OpenAI function tools have no allowed callers",
        "eager_input_streaming": "OpenAI function tools have no streaming setting",
    },
)
_TIERS_TO_OPENAI = {"auto": "auto", "standard_only": "default"}


def _anthropic_to_openai(body: Mapping[str, Any]) -> ChatRequest:
    _refuse(body, _ANTHROPIC_TOP, "", _TO_OPENAI)
    for i, message in enumerate(_items(body.get("messages"))):
        _refuse(message, {"role": None, "content": None}, f"messages[{i}].", _TO_OPENAI)
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else ()):
            _check_anthropic_block(block, f"messages[{i}].content[{j}]")
    system = body.get("system")
    for j, block in enumerate(system if isinstance(system, list) else ()):
        _check_anthropic_block(block, f"system[{j}]", text_only="OpenAI's system text is text only")
    for i, tool in enumerate(_items(body.get("tools"))):
        _check_anthropic_tool(tool, f"tools[{i}]")
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        allowed = {"type": None, "name": None, "disable_parallel_tool_use": None}
        _refuse(choice, allowed, "tool_choice.", _TO_OPENAI)
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping):
        _refuse(metadata, {"user_id": None}, "metadata.", _TO_OPENAI)
    request = chat_request_from_anthropic(body)[2]
    extra: dict[str, Any] = {}
    if body.get("service_tier") is not None:
        extra["service_tier"] = _TIERS_TO_OPENAI[body["service_tier"]]
    return dataclasses.replace(
        request,
        messages=tuple(
            _openai_message(m, f"messages[{i}]") for i, m in enumerate(request.messages)
        ),
        tools=tuple(_openai_tool(t) for t in _items(body.get("tools"))),
        extra=extra,
    )


def _stop_sequences(value: Any) -> bool:
    if isinstance(value, list) and len(value) > 4:
        raise CannotCarry("stop_sequences", "OpenAI takes at most 4 stop sequences")
    return True


def _thinking(value: Any) -> bool:
    return isinstance(value, Mapping) and value.get("type") == "disabled"


def _openai_tier(value: Any) -> bool:
    if not isinstance(value, str) or value not in _TIERS_TO_OPENAI:
        raise CannotCarry("service_tier", "OpenAI's counterparts are auto and default only")
    return True


_ANTHROPIC_TOP: dict[str, Check | None] = {
    "model": None,
    "messages": None,
    "system": None,
    "max_tokens": None,
    "stop_sequences": _stop_sequences,
    "temperature": None,
    "top_p": None,
    "tools": None,
    "tool_choice": None,
    "metadata": None,
    "stream": None,
    "cache_control": None,  # OpenAI caches long prompt prefixes on its own
    "service_tier": _openai_tier,
    "thinking": _thinking,
    "speed": lambda v: v == "standard",
}

_TEXT_KEYS: dict[str, Check | None] = {
    "type": None,
    "text": None,
    "cache_control": None,
    "citations": _empty,
}
_BLOCK_KEYS: dict[str, dict[str, Check | None]] = {
    "text": _TEXT_KEYS,
    "image": {"type": None, "source": None, "cache_control": None},
    "tool_use": {"type": None, "id": None, "name": None, "input": None, "cache_control": None},
    "tool_result": {
        "type": None,
        "tool_use_id": None,
        "content": None,
        "is_error": _false,
        "cache_control": None,
    },
}


def _check_anthropic_block(block: Any, where: str, *, text_only: str | None = None) -> None:
    """CannotCarry for a block (or a key of it) with no OpenAI counterpart; `text_only`:
    why only text may be here (system, tool results)."""
    if not isinstance(block, Mapping) or not isinstance(block.get("type"), str):
        return  # wire names it
    kind = block["type"]
    if text_only is not None and kind in _BLOCK_KEYS and kind != "text":
        raise CannotCarry(f"{where}.{kind}", text_only)
    if kind not in _BLOCK_KEYS:
        raise CannotCarry(f"{where}.{_named(kind)}", _TO_OPENAI.why(kind))
    _refuse(block, _BLOCK_KEYS[kind], f"{where}.", _TO_OPENAI)
    if kind == "image":
        source = block.get("source")
        if isinstance(source, Mapping) and source.get("type") not in ("base64", "url"):
            raise CannotCarry(f"{where}.source", "OpenAI takes images as data or http(s) URLs")
    content = block.get("content")
    if kind == "tool_result" and isinstance(content, list):
        for k, inner in enumerate(content):
            _check_anthropic_block(
                inner, f"{where}.content[{k}]", text_only="OpenAI tool messages take text only"
            )


def _check_anthropic_tool(tool: Any, where: str) -> None:
    if not isinstance(tool, Mapping):
        return
    kind = tool.get("type")
    if kind not in (None, "custom"):
        raise CannotCarry(f"{where}.type", f"OpenAI chat completions have no {_named(kind)} tool")
    allowed: dict[str, Check | None] = {
        "type": None,
        "name": None,
        "description": None,
        "input_schema": None,
        "cache_control": None,
        "strict": None,
        "input_examples": _empty,
        "defer_loading": _false,
        "allowed_callers": lambda v: v == ["direct"],
    }
    _refuse(tool, allowed, f"{where}.", _TO_OPENAI)


def _openai_message(message: Message, where: str) -> Message:
    """Wire's message with Anthropic blocks as what the OpenAI adapter sends: text, image_url
    parts, tool_use and tool_result (as text)."""
    if isinstance(message.content, str):
        return message
    blocks = [_openai_part(b, f"{where}.content[{j}]") for j, b in enumerate(message.content)]
    return Message(role=message.role, content=tuple(blocks))


def _openai_part(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    kind = block.get("type")
    if kind == "text":
        return {"type": "text", "text": block["text"]}
    if kind == "tool_use":
        return {k: block[k] for k in ("type", "id", "name", "input") if k in block}
    if kind == "tool_result":
        content = block.get("content") or ""
        text = content if isinstance(content, str) else text_of(content)
        return {"type": "tool_result", "tool_use_id": block.get("tool_use_id"), "content": text}
    return {"type": "image_url", "image_url": {"url": _data_url(block.get("source"), where)}}


def _data_url(source: Any, where: str) -> str:
    if isinstance(source, Mapping) and source.get("type") == "url":
        if isinstance(source.get("url"), str):
            return str(source["url"])
        raise WireError(f"{where}.source.url: expected a string")
    if not isinstance(source, Mapping):
        raise WireError(f"{where}.source: expected a JSON object")
    media, data = source.get("media_type"), source.get("data")
    if not isinstance(media, str) or not isinstance(data, str):
        raise WireError(f"{where}.source: expected media_type and data strings")
    return f"data:{media};base64,{data}"


def _openai_tool(tool: Mapping[str, Any]) -> dict[str, Any]:
    schema = tool.get("input_schema") or {"type": "object", "properties": {}}
    function: dict[str, Any] = {"name": tool["name"], "parameters": schema}
    if tool.get("description") is not None:
        function["description"] = tool["description"]
    if tool.get("strict") is not None:
        function["strict"] = tool["strict"]
    return {"type": "function", "function": function}


def _items(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a list field (others are wire's to name)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
