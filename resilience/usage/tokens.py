"""Token counts as the provider reported them, in one shape for both formats.

`input` is every prompt token billed (cached reads and cache writes included), `cached`
the part of it read from the provider's prompt cache, `output` the completion's. OpenAI
reports `prompt_tokens` (cached included) and `prompt_tokens_details.cached_tokens`;
Anthropic reports `input_tokens` apart from `cache_read_input_tokens` and
`cache_creation_input_tokens`, so its three are summed. A stream reports usage in its
events (`StreamTally`): OpenAI's last chunk when `stream_options.include_usage` asked for
it, Anthropic's `message_start` (input) and `message_delta` (output, cumulative).
None means the provider reported nothing: counted as unknown, never as zero.

An OpenAI stream that did not ask for its usage reports none, so tpm would charge it only
its prompt (and `max_tokens`, when set): a tenant could stream any number of output tokens
past its bucket. For tpm the tally then also counts the text the stream carried, as
`StreamTally.estimated`: the prompt's estimate and about four characters an output token.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resilience.models import Usage
from resilience.providers.native import NativeApi
from resilience.usage.estimate import CHARS_PER_TOKEN


@dataclass(frozen=True, slots=True)
class TokenCounts:
    input: int = 0
    output: int = 0
    cached: int = 0

    @property
    def total(self) -> int:
        return self.input + self.output


def from_usage(usage: Usage | None) -> TokenCounts | None:
    """A normalised answer's usage (`ChatResponse.usage`, `EmbeddingResponse.usage`)."""
    if usage is None:
        return None
    return TokenCounts(input=usage.input_tokens, output=usage.output_tokens)


def from_native(api: NativeApi, data: Mapping[str, Any]) -> TokenCounts | None:
    """A whole answer's `usage` in the request's own format; None when it has none."""
    usage = data.get("usage")
    if not isinstance(usage, Mapping):
        return None
    if api.startswith("anthropic."):
        return _anthropic(usage)
    return _openai(usage)


class StreamTally:
    """Feeds on a stream's SSE events as they pass; `counts` once it ended.

    `prompt_tokens` (an OpenAI stream that will not report usage): every event is read for
    the text it carries, so `estimated` can stand in for the usage it never reports."""

    __slots__ = ("_anthropic", "_cached", "_input", "_output", "_prompt", "_seen", "_text")

    def __init__(self, api: NativeApi, *, prompt_tokens: int | None = None) -> None:
        self._anthropic = api.startswith("anthropic.")
        self._input = self._cached = self._output = 0
        self._seen = False
        self._prompt = prompt_tokens
        self._text = 0
        """Characters of output text seen, when estimating."""

    def feed(self, frame: bytes) -> None:
        """One complete SSE event (as `resilience.providers.native.events` yields them)."""
        estimating = self._prompt is not None
        if not estimating and b'"usage"' not in frame:  # most frames: no parse
            return
        for line in frame.split(b"\n"):
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                continue
            try:
                event = json.loads(payload)
            except ValueError:
                continue
            if isinstance(event, Mapping):
                self._take(event)
                if estimating:
                    self._text += _output_chars(event)

    def _take(self, event: Mapping[str, Any]) -> None:
        if self._anthropic:
            message = event.get("message")
            usage = message.get("usage") if isinstance(message, Mapping) else event.get("usage")
            if not isinstance(usage, Mapping):
                return
            counts = _anthropic(usage)
            if event.get("type") == "message_start":
                self._input, self._cached = counts.input, counts.cached
            self._output = max(self._output, counts.output)  # message_delta's is cumulative
            self._seen = True
            return
        usage = event.get("usage")
        if isinstance(usage, Mapping):
            counts = _openai(usage)
            self._input, self._cached, self._output = counts.input, counts.cached, counts.output
            self._seen = True

    @property
    def estimated(self) -> TokenCounts | None:
        """What the stream used by estimate (the prompt's, and its text's), for a stream
        that reported nothing; None when not estimating."""
        if self._prompt is None:
            return None
        return TokenCounts(input=self._prompt, output=-(-self._text // CHARS_PER_TOKEN))

    @property
    def counts(self) -> TokenCounts | None:
        if not self._seen:
            return None
        return TokenCounts(input=self._input, output=self._output, cached=self._cached)


def _output_chars(chunk: Mapping[str, Any]) -> int:
    """The characters of generated text in one OpenAI chat chunk, over all its choices:
    content, refusal, reasoning (as compatible servers stream it), tool and function call
    names and arguments, and an audio answer's transcript."""
    choices = chunk.get("choices")
    if not isinstance(choices, list):
        return 0
    chars = 0
    for choice in choices:
        delta = choice.get("delta") if isinstance(choice, Mapping) else None
        if not isinstance(delta, Mapping):
            continue
        for key in _TEXT_KEYS:
            chars += _length(delta.get(key))
        calls = delta.get("tool_calls")
        for call in calls if isinstance(calls, list) else ():
            if isinstance(call, Mapping):
                chars += _call_chars(call.get("function"))
        chars += _call_chars(delta.get("function_call"))
        audio = delta.get("audio")
        if isinstance(audio, Mapping):
            chars += _length(audio.get("transcript"))
    return chars


_TEXT_KEYS = ("content", "refusal", "reasoning_content", "reasoning")


def _call_chars(function: Any) -> int:
    if not isinstance(function, Mapping):
        return 0
    return _length(function.get("name")) + _length(function.get("arguments"))


def _length(value: Any) -> int:
    return len(value) if isinstance(value, str) else 0


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _openai(usage: Mapping[str, Any]) -> TokenCounts:
    details = usage.get("prompt_tokens_details")
    cached = _int(details.get("cached_tokens")) if isinstance(details, Mapping) else 0
    return TokenCounts(
        input=_int(usage.get("prompt_tokens")),
        output=_int(usage.get("completion_tokens")),
        cached=cached,
    )


def _anthropic(usage: Mapping[str, Any]) -> TokenCounts:
    read = _int(usage.get("cache_read_input_tokens"))
    written = _int(usage.get("cache_creation_input_tokens"))
    return TokenCounts(
        input=_int(usage.get("input_tokens")) + read + written,
        output=_int(usage.get("output_tokens")),
        cached=read,
    )
