"""Token counts as the provider reported them, in one shape for both formats.

`input` is every prompt token billed (cached reads and cache writes included), `cached`
the part of it read from the provider's prompt cache, `output` the completion's. OpenAI
reports `prompt_tokens` (cached included) and `prompt_tokens_details.cached_tokens`;
Anthropic reports `input_tokens` apart from `cache_read_input_tokens` and
`cache_creation_input_tokens`, so its three are summed. A stream reports usage in its
events (`StreamTally`): OpenAI's last chunk when `stream_options.include_usage` asked for
it, Anthropic's `message_start` (input) and `message_delta` (output, cumulative).
None means the provider reported nothing: counted as unknown, never as zero.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from resilience.models import Usage
from resilience.providers.native import NativeApi


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
    """Feeds on a stream's SSE events as they pass; `counts` once it ended."""

    __slots__ = ("_anthropic", "_cached", "_input", "_output", "_seen")

    def __init__(self, api: NativeApi) -> None:
        self._anthropic = api.startswith("anthropic.")
        self._input = self._cached = self._output = 0
        self._seen = False

    def feed(self, frame: bytes) -> None:
        """One complete SSE event (as `resilience.providers.native.events` yields them)."""
        if b'"usage"' not in frame:  # most frames: no parse
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
    def counts(self) -> TokenCounts | None:
        if not self._seen:
            return None
        return TokenCounts(input=self._input, output=self._output, cached=self._cached)


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
