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

Each direction is a module of its own (`openai_to_anthropic`, `anthropic_to_openai`); what
they share, `CannotCarry` included, is in `carry`.

The checks run before the body is parsed (`resilience.formats.wire`), so a field valid in
its own format but foreign to the target is named as such rather than refused as invalid;
a body that is invalid in its own format raises `WireError`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from resilience.formats.anthropic_to_openai import anthropic_to_openai
from resilience.formats.carry import CannotCarry
from resilience.formats.openai_to_anthropic import openai_to_anthropic
from resilience.formats.wire import (
    AnthropicStreamWriter,
    OpenAIStreamWriter,
    WireError,
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
)
from resilience.providers.native import NativeApi
from resilience.providers.settings import ProviderKind


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
        return openai_to_anthropic(body)
    if api == "anthropic.messages" and kind == "openai":
        return anthropic_to_openai(body)
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


__all__ = ["CannotCarry", "FrameWriter", "answer_body", "carried_request", "frame_writer"]
