"""The few checks the real APIs make of a body before answering, so a malformed request gets
the provider's own 400 from the chaos upstream too (a gateway that passes bodies on as
they are relays it; a client test sees what production would show).

Only required fields and their basic types: `messages` a non-empty list of objects with a
known role, `max_tokens` a positive integer (required by Anthropic), embeddings `input`
present and of an accepted shape. Everything else is accepted, as before.
"""

from __future__ import annotations

from typing import Any

_OPENAI_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_ANTHROPIC_ROLES = frozenset({"user", "assistant"})


def problem(api: str, body: dict[str, Any]) -> str | None:
    """What the real API would refuse in `body` ("<field>: <why>"), or None."""
    if api == "embeddings":
        return _input(body.get("input"))
    found = _messages(body.get("messages"), _ANTHROPIC_ROLES if api != "chat" else _OPENAI_ROLES)
    if found is not None:
        return found
    if api == "messages":
        return _positive(body, "max_tokens", required=True)
    if api == "chat":
        return _positive(body, "max_tokens") or _positive(body, "max_completion_tokens")
    return None


def _messages(value: Any, roles: frozenset[str]) -> str | None:
    if not isinstance(value, list) or not value:
        return "messages: expected a non-empty list of messages"
    for i, message in enumerate(value):
        if not isinstance(message, dict):
            return f"messages[{i}]: expected an object"
        if message.get("role") not in roles:
            return f"messages[{i}].role: expected one of {', '.join(sorted(roles))}"
    return None


def _positive(body: dict[str, Any], key: str, *, required: bool = False) -> str | None:
    value = body.get(key)
    if value is None:
        return f"{key}: required" if required else None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return f"{key}: expected an integer of at least 1, got {value!r}"
    return None


def _input(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return None
    if isinstance(value, list) and value:
        if all(isinstance(v, str) for v in value):
            return None
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return None
        if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
            return None
    return "input: expected a string, a list of strings, a token array or token arrays"
