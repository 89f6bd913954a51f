"""An Anthropic Messages body for a provider of OpenAI's kind: each field mapped to its
chat completions counterpart (images included), or `CannotCarry` naming it."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from resilience.formats.carry import (
    CannotCarry,
    Check,
    Target,
    empty,
    false,
    items,
    named,
    refuse,
)
from resilience.formats.wire import (
    WireError,
    chat_request_from_anthropic,
)
from resilience.models import ChatRequest, Message, text_of

_TO_OPENAI = Target(
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


def anthropic_to_openai(body: Mapping[str, Any]) -> ChatRequest:
    refuse(body, _ANTHROPIC_TOP, "", _TO_OPENAI)
    for i, message in enumerate(items(body.get("messages"))):
        refuse(message, {"role": None, "content": None}, f"messages[{i}].", _TO_OPENAI)
        content = message.get("content")
        for j, block in enumerate(content if isinstance(content, list) else ()):
            _check_anthropic_block(block, f"messages[{i}].content[{j}]")
    system = body.get("system")
    for j, block in enumerate(system if isinstance(system, list) else ()):
        _check_anthropic_block(block, f"system[{j}]", text_only="OpenAI's system text is text only")
    for i, tool in enumerate(items(body.get("tools"))):
        _check_anthropic_tool(tool, f"tools[{i}]")
    choice = body.get("tool_choice")
    if isinstance(choice, Mapping):
        allowed = {"type": None, "name": None, "disable_parallel_tool_use": None}
        refuse(choice, allowed, "tool_choice.", _TO_OPENAI)
    metadata = body.get("metadata")
    if isinstance(metadata, Mapping):
        refuse(metadata, {"user_id": None}, "metadata.", _TO_OPENAI)
    request = chat_request_from_anthropic(body)[2]
    extra: dict[str, Any] = {}
    if body.get("service_tier") is not None:
        extra["service_tier"] = _TIERS_TO_OPENAI[body["service_tier"]]
    return dataclasses.replace(
        request,
        messages=tuple(
            _openai_message(m, f"messages[{i}]") for i, m in enumerate(request.messages)
        ),
        tools=tuple(_openai_tool(t) for t in items(body.get("tools"))),
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
    "citations": empty,
}
_BLOCK_KEYS: dict[str, dict[str, Check | None]] = {
    "text": _TEXT_KEYS,
    "image": {"type": None, "source": None, "cache_control": None},
    "tool_use": {"type": None, "id": None, "name": None, "input": None, "cache_control": None},
    "tool_result": {
        "type": None,
        "tool_use_id": None,
        "content": None,
        "is_error": false,
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
        raise CannotCarry(f"{where}.{named(kind)}", _TO_OPENAI.why(kind))
    refuse(block, _BLOCK_KEYS[kind], f"{where}.", _TO_OPENAI)
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
        raise CannotCarry(f"{where}.type", f"OpenAI chat completions have no {named(kind)} tool")
    allowed: dict[str, Check | None] = {
        "type": None,
        "name": None,
        "description": None,
        "input_schema": None,
        "cache_control": None,
        "strict": None,
        "input_examples": empty,
        "defer_loading": false,
        "allowed_callers": lambda v: v == ["direct"],
    }
    refuse(tool, allowed, f"{where}.", _TO_OPENAI)


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
