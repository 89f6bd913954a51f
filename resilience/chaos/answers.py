"""The healthy answers: deterministic text, token counts and vectors, and SSE framing."""

from __future__ import annotations

import hashlib
import json
from typing import Any

EMBEDDING_DIMS = 8


def answer(prompt: str) -> str:
    """The reply to `prompt`: deterministic, several words long so it streams in several chunks."""
    return f"ok: {prompt[:40]} (answered by chaos)"


def words(text: str) -> list[str]:
    """The content chunks of a streamed answer: one word each, spaces kept."""
    parts = text.split(" ")
    return [p + (" " if i < len(parts) - 1 else "") for i, p in enumerate(parts)]


def last_user_text(messages: Any) -> str:
    """The text of the last user message, in either API's message shape."""
    if not isinstance(messages, list):
        return ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):
                return " ".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def token_count(text: str) -> int:
    """A stand-in for a tokenizer: words, at least one."""
    return max(1, len(text.split()))


def embedding(text: str) -> list[float]:
    """A deterministic vector in [-1, 1) derived from the text; exact as float32."""
    digest = hashlib.sha256(text.encode()).digest()
    return [(b - 128) / 128 for b in digest[:EMBEDDING_DIMS]]


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; `data` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
