"""A call's tokens before it is sent, for tpm admission: its prompt's size and `max_tokens`.

No tokenizer: about four characters of text a token, as OpenAI and Anthropic both give as
the rule of thumb for English; plus the output the request allows (`max_tokens`,
`max_completion_tokens`). The estimate only admits the call: when the attempt ends the
bucket is charged what the provider reported (`resilience.routing.ratelimit`), so a rough
estimate costs at most a wait, never a wrong total.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resilience.models import ChatRequest, EmbeddingRequest

CHARS_PER_TOKEN = 4
_PROMPT_KEYS = ("messages", "system", "tools", "input")
"""The parts of a native body that are prompt (the rest are settings)."""


def estimate_chat(request: ChatRequest) -> int:
    chars = len(request.system or "")
    for message in request.messages:
        chars += _chars(message.content)
    chars += _chars(request.tools)
    return _tokens(chars) + (request.max_tokens or 0)


def estimate_embedding(request: EmbeddingRequest) -> int:
    return _tokens(sum(len(text) for text in request.inputs))


def estimate_native(body: Mapping[str, Any]) -> int:
    """A body in OpenAI's or Anthropic's format (chat, messages, embeddings)."""
    most = body.get("max_completion_tokens", body.get("max_tokens"))
    allowed = most if isinstance(most, int) and not isinstance(most, bool) and most > 0 else 0
    return estimate_prompt(body) + allowed


def estimate_prompt(body: Mapping[str, Any]) -> int:
    """A native body's prompt alone."""
    return _tokens(sum(_chars(body.get(key)) for key in _PROMPT_KEYS))


def unreported_prompt(api: str, body: Mapping[str, Any]) -> int | None:
    """The prompt's estimate of an OpenAI chat stream that will report no usage (its body
    does not ask for `stream_options.include_usage`), whose tpm charge is then estimated
    from the text it streams (`resilience.usage.tokens.StreamTally`); None otherwise."""
    if api != "openai.chat":
        return None
    options = body.get("stream_options")
    if isinstance(options, Mapping) and options.get("include_usage") is True:
        return None
    return estimate_prompt(body)


def _tokens(chars: int) -> int:
    return max(1, -(-chars // CHARS_PER_TOKEN))


def _chars(value: object) -> int:
    """The length of every string in `value` (JSON-like), keys of mappings left out."""
    if isinstance(value, str):
        return len(value)
    if isinstance(value, Mapping):
        return sum(_chars(v) for v in value.values())
    if isinstance(value, list | tuple):
        return sum(_chars(v) for v in value)
    return 0
