"""What a request body asks of its answer: a forced tool call, a structured text, thinking.

Clients that send these fields parse the answer with them (a pydantic model, a tool's
argument schema, a thinking block), so a healthy chaos answer honours each one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resilience.chaos.answers import answer, texts_in
from resilience.chaos.schema_instance import instance

_SCHEMA_TRIES = 64
"""Positions tried per message when looking for a schema in the prompt (bounds the work)."""


@dataclass(frozen=True, slots=True)
class ToolCall:
    """The call a request forces: the tool's name and arguments valid against its schema."""

    name: str
    arguments: Any

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


def openai_tool_call(body: Mapping[str, Any]) -> ToolCall | None:
    """The function `tool_choice` forces (by name, or "required": the first), if any."""
    functions = [
        t["function"]
        for t in _list(body.get("tools"))
        if t.get("type") == "function" and isinstance(t.get("function"), Mapping)
    ]
    choice = body.get("tool_choice")
    if choice == "required":
        return _call(functions[0], "parameters") if functions else None
    if not isinstance(choice, Mapping):
        return None
    if choice.get("type") == "allowed_tools":  # {"allowed_tools": {"mode", "tools"}}
        allowed = choice.get("allowed_tools")
        if not isinstance(allowed, Mapping) or allowed.get("mode") != "required":
            return None
        names = [_name(t.get("function")) for t in _list(allowed.get("tools"))]
        return _named([f for f in functions if f.get("name") in names], None, "parameters")
    if choice.get("type") == "function":
        return _named(functions, _name(choice.get("function")), "parameters")
    return None


def anthropic_tool_call(body: Mapping[str, Any]) -> ToolCall | None:
    """The tool `tool_choice` forces (`{"type": "tool", "name"}`, or "any": the first)."""
    tools = _list(body.get("tools"))
    choice = body.get("tool_choice")
    if not isinstance(choice, Mapping) or not tools:
        return None
    if choice.get("type") == "any":
        return _call(tools[0], "input_schema")
    if choice.get("type") == "tool":
        return _named(tools, _name(choice), "input_schema")
    return None


def openai_structured_text(body: Mapping[str, Any], prompt: str) -> str | None:
    """The content `response_format` asks for: JSON valid against its schema, or None."""
    response_format = body.get("response_format")
    if not isinstance(response_format, Mapping):
        return None
    if response_format.get("type") == "json_object":
        schema = schema_in_prompt(body.get("messages"))
        return json.dumps({"answer": answer(prompt)} if schema is None else instance(schema))
    json_schema = response_format.get("json_schema")
    if response_format.get("type") == "json_schema" and isinstance(json_schema, Mapping):
        return json.dumps(instance(json_schema.get("schema", {})))
    return None


def schema_in_prompt(messages: Any) -> dict[str, Any] | None:
    """The first JSON Schema (an object with "properties") written in a message's text.

    JSON mode has no schema field: clients such as instructor's `Mode.JSON` put the schema
    in the prompt, and parse the answer with it.
    """
    decoder = json.JSONDecoder()
    for text in texts_in(messages):
        start = text.find("{")
        for _ in range(_SCHEMA_TRIES):
            if start < 0:
                break
            try:
                found, _end = decoder.raw_decode(text, start)
            except ValueError:
                found = None
            if isinstance(found, dict) and isinstance(found.get("properties"), Mapping):
                return found
            start = text.find("{", start + 1)
    return None


def anthropic_structured_text(body: Mapping[str, Any]) -> str | None:
    """The text `output_config.format` (or the older `output_format`) asks for, or None."""
    config = body.get("output_config")
    wanted = config.get("format") if isinstance(config, Mapping) else body.get("output_format")
    if isinstance(wanted, Mapping) and wanted.get("type") == "json_schema":
        return json.dumps(instance(wanted.get("schema", {})))
    return None


def anthropic_thinking(body: Mapping[str, Any]) -> str | None:
    """How extended thinking shows: "summarized" (the text), "omitted" (the signature only),
    or None when the request did not turn it on."""
    thinking = body.get("thinking")
    if not isinstance(thinking, Mapping) or thinking.get("type") not in ("enabled", "adaptive"):
        return None
    return "omitted" if thinking.get("display") == "omitted" else "summarized"


def _list(value: Any) -> list[Mapping[str, Any]]:
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []


def _name(value: Any) -> str | None:
    name = value.get("name") if isinstance(value, Mapping) else None
    return name if isinstance(name, str) else None


def _named(tools: list[Mapping[str, Any]], name: str | None, schema_key: str) -> ToolCall | None:
    """The tool called `name` (None: the first); a name no tool has is still called."""
    for tool in tools:
        if name is None or tool.get("name") == name:
            return _call(tool, schema_key)
    return None if name is None else ToolCall(name, {})


def _call(tool: Mapping[str, Any], schema_key: str) -> ToolCall:
    arguments = instance(tool.get(schema_key))  # a tool without a schema takes no arguments
    return ToolCall(_name(tool) or "tool", arguments if isinstance(arguments, dict) else {})
