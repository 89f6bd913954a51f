"""The healthy answers: deterministic text, token counts and vectors, and SSE framing."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
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


def texts_in(value: Any) -> Iterator[str]:
    """Every text of a system prompt, messages or blocks: strings under "text" or "content"
    (and under "system" / "block", the keys the prompt cache files them under)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from texts_in(item)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            if key in ("text", "content", "system", "block"):
                yield from texts_in(item)


def token_count(text: str) -> int:
    """A stand-in for a tokenizer: words, at least one."""
    return max(1, len(text.split()))


def embedding(text: str, dims: int = EMBEDDING_DIMS) -> list[float]:
    """A deterministic vector in [-1, 1) derived from the text; exact as float32.

    Its first numbers do not depend on `dims`, as with OpenAI's shortened embeddings.
    """
    digest = b""
    while len(digest) < dims:
        salt = f"#{len(digest) // 32}" if digest else ""
        digest += hashlib.sha256((text + salt).encode()).digest()
    return [(b - 128) / 128 for b in digest[:dims]]


def stable_id(prefix: str, *parts: str) -> str:
    """An id made from what it names, so two identical requests get identical answers."""
    digest = hashlib.sha256("\0".join(parts).encode()).hexdigest()
    return f"{prefix}{digest[:24]}"


def sse(data: Any, event: str | None = None) -> bytes:
    """One server-sent event; `data` is JSON-encoded unless it is already a string."""
    payload = data if isinstance(data, str) else json.dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()
