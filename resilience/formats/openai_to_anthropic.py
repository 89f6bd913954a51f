"""An OpenAI chat body for a provider of Anthropic's kind: each field mapped to its
Messages counterpart (images included), or `CannotCarry` naming it."""

from __future__ import annotations

import dataclasses
import re
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
    never,
    refuse,
    zero,
)
from resilience.formats.wire import (
    WireError,
    chat_request_from_openai,
)
from resilience.models import ChatRequest, Message, identifier_problem

_TO_ANTHROPIC = Target(
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


def openai_to_anthropic(body: Mapping[str, Any]) -> ChatRequest:
    refuse(body, _OPENAI_TOP, "", _TO_ANTHROPIC)
    for i, message in enumerate(items(body.get("messages"))):
        _check_openai_message(message, f"messages[{i}]")
    for i, tool in enumerate(items(body.get("tools"))):
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
        tools=tuple(_anthropic_tool(t) for t in items(body.get("tools"))),
        metadata=metadata,
        extra=extra,
    )


def _temperature(value: Any) -> bool:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 1:
        raise CannotCarry("temperature", "Anthropic accepts 0 to 1; above 1 has no counterpart")
    return True


def _stream_options(value: Any) -> bool:
    if isinstance(value, Mapping):
        allowed: dict[str, Check | None] = {"include_usage": None, "include_obfuscation": false}
        refuse(value, allowed, "stream_options.", _TO_ANTHROPIC)
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
    "metadata": empty,
    "store": false,
    "logprobs": false,
    "top_logprobs": never,
    "seed": never,
    "logit_bias": empty,
    "presence_penalty": zero,
    "frequency_penalty": zero,
    "prediction": never,
    "modalities": lambda v: v == ["text"],
    "audio": never,
    "reasoning_effort": never,
    "verbosity": never,
    "web_search_options": never,
    "response_format": _text_format,
    "function_call": never,
    "functions": empty,
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
    refuse(message, _OPENAI_MESSAGE[role], f"{where}.", _TO_ANTHROPIC)
    content = message.get("content")
    for j, part in enumerate(content if isinstance(content, list) else ()):
        _check_openai_part(part, f"{where}.content[{j}]", in_turn=role in ("user", "assistant"))
    for j, call in enumerate(items(message.get("tool_calls"))):
        kind = call.get("type", "function")
        if kind != "function":
            raise CannotCarry(f"{where}.tool_calls[{j}].{named(kind)}", _TO_ANTHROPIC.why("custom"))
        refuse(
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
    breakpoint_: Check | None = None if in_turn else never
    if kind == "text":
        refuse(
            part,
            {"type": None, "text": None, "prompt_cache_breakpoint": breakpoint_},
            f"{where}.",
            _TO_ANTHROPIC,
        )
    elif kind == "image_url" and in_turn:
        refuse(
            part,
            {"type": None, "image_url": None, "prompt_cache_breakpoint": None},
            f"{where}.",
            _TO_ANTHROPIC,
        )
        image = part.get("image_url")
        if isinstance(image, Mapping):
            refuse(
                image,
                {"url": None, "detail": lambda d: d in ("auto", "high")},
                f"{where}.image_url.",
                _TO_ANTHROPIC,
            )
            _image_source(image.get("url"), f"{where}.image_url.url")
    else:
        raise CannotCarry(f"{where}.{named(kind)}", _TO_ANTHROPIC.why(kind))


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
        raise CannotCarry(f"{where}.type", f"Anthropic has no {named(kind)} tools")
    refuse(tool, {"type": None, "function": None}, f"{where}.", _TO_ANTHROPIC)
    function = tool.get("function")
    if isinstance(function, Mapping):
        allowed: dict[str, Check | None] = {
            "name": None,
            "description": None,
            "parameters": None,
            "strict": None,
        }
        refuse(function, allowed, f"{where}.function.", _TO_ANTHROPIC)


def _check_openai_choice(choice: Any) -> None:
    if isinstance(choice, Mapping) and choice.get("type") not in ("function", None):
        raise CannotCarry("tool_choice.type", f"Anthropic has no {named(choice['type'])} choice")
    if isinstance(choice, Mapping):
        refuse(choice, {"type": None, "function": None}, "tool_choice.", _TO_ANTHROPIC)


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
