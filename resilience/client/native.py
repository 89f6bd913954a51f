"""What one native call sends to each kind of target: the body as it is, or a translation.

`ResilientClient.complete_native` and `stream_native` take a body in a provider's own
format (OpenAI chat or embeddings, Anthropic Messages or count_tokens). A target of that
kind gets the body unchanged but for `model` (`resilience.providers.native`). A target of
the other kind gets it translated (`resilience.formats.cross`) and its answer translated
back; a field it cannot carry makes it ineligible for this call, named in its outcome,
never dropped. A provider that cannot take a body as it is (a custom `Provider`) gets the
normalised request, with the fields the normalised model has no place for as `extra`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Mapping
from typing import Any

from resilience.client.streaming import first_of
from resilience.errors import InvalidRequestError
from resilience.formats import cross, wire
from resilience.models import ChatChunk, ChatRequest, EmbeddingRequest
from resilience.providers.base import Provider
from resilience.providers.native import API_KIND, NativeAnswer, NativeApi, encode
from resilience.providers.settings import ProviderKind
from resilience.routing.routes import Target

Opened = tuple[AsyncGenerator[bytes, None], bytes | None]
"""A stream whose first frame has arrived (None: it ended before any)."""

_OPENAI_CHAT_FIELDS = frozenset(
    {
        "model",
        "messages",
        "stream",
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "stop",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "user",
        "n",
        "stream_options",
    }
)
_ANTHROPIC_FIELDS = frozenset(
    {
        "model",
        "messages",
        "system",
        "stream",
        "max_tokens",
        "temperature",
        "top_p",
        "stop_sequences",
        "tools",
        "tool_choice",
        "metadata",
    }
)


class NativePlan:
    """One native call: its body, and what each kind of target would be sent."""

    def __init__(
        self, api: NativeApi, body: Mapping[str, Any], headers: Mapping[str, str] | None
    ) -> None:
        if api not in API_KIND:
            raise ValueError(f"api: expected one of {', '.join(API_KIND)}, got {api!r}")
        if not isinstance(body, Mapping):
            raise InvalidRequestError("body", "expected a JSON object")
        model = body.get("model")
        if not isinstance(model, str):
            raise InvalidRequestError("model", "required, a string (a route or provider:model)")
        self.api = api
        self.body = body
        self.route = model
        self.headers = headers
        self.kind: ProviderKind = API_KIND[api]
        self._requests: dict[ProviderKind, ChatRequest | EmbeddingRequest | ValueError] = {}

    def passes(self, provider: Provider) -> bool:
        """Whether `provider` takes the body as it is."""
        return provider.kind == self.kind and hasattr(provider, "send_native")

    def cannot_carry(self, provider: Provider, target: Target) -> str | None:
        """Why `provider` cannot take this call ("<field>: <why>"), or None."""
        if self.passes(provider):
            return None
        if self.api == "anthropic.count_tokens":
            return (
                f"count_tokens: provider {provider.name!r} is of kind {provider.kind}, "
                "which has no token counting endpoint"
            )
        found = self._request_for(provider.kind)
        return str(found) if isinstance(found, ValueError) else None

    def _request_for(self, kind: ProviderKind) -> ChatRequest | EmbeddingRequest | ValueError:
        """The request for a target of `kind`, or the `CannotCarry` saying why there is none."""
        found = self._requests.get(kind)
        if found is None:
            try:
                found = self._translate(kind)
            except cross.CannotCarry as exc:
                found = exc
            except wire.WireError as exc:  # invalid in its own format: no target may take it
                raise InvalidRequestError(exc.param or "body", _problem(exc)) from None
            self._requests[kind] = found
        return found

    def _translate(self, kind: ProviderKind) -> ChatRequest | EmbeddingRequest:
        if self.api == "openai.embeddings":
            return wire.embedding_request_from_openai(self.body)[1]
        if kind != self.kind:
            return cross.carried_request(self.api, self.body, kind)
        # the same kind, through the normalised model: what it has no place for rides as extra
        if self.api == "openai.chat":
            request = wire.chat_request_from_openai(self.body)[2]
            known = _OPENAI_CHAT_FIELDS
        else:
            request = wire.chat_request_from_anthropic(self.body)[2]
            known = _ANTHROPIC_FIELDS
        extra = {k: v for k, v in self.body.items() if k not in known}
        return dataclasses.replace(request, extra={**request.extra, **extra}) if extra else request

    def _translated(self, kind: ProviderKind) -> ChatRequest | EmbeddingRequest:
        found = self._request_for(kind)
        if isinstance(found, ValueError):  # the walk skips such targets before calling
            raise found
        return found

    # -- calls ----------------------------------------------------------------------------

    async def complete(self, provider: Provider, target: Target, key: str | None) -> NativeAnswer:
        """One attempt at `target`: the answer in the body's format."""
        if self.passes(provider):
            send = provider.send_native  # type: ignore[attr-defined]
            answer: NativeAnswer = await send(
                self.api, {**self.body, "model": target.model}, api_key=key, headers=self.headers
            )
            return answer
        request = self._translated(provider.kind)
        if isinstance(request, EmbeddingRequest):
            vectors = await provider.embed(request, model=target.model, api_key=key)
            encoding = self.body.get("encoding_format")
            data = wire.embedding_response_to_openai(
                vectors,
                model=vectors.model or target.model,
                encoding_format=encoding if isinstance(encoding, str) else "float",
            )
        else:
            response = await provider.complete(request, model=target.model, api_key=key)
            data = cross.answer_body(
                self.api, response, model=response.model or target.model, body=self.body
            )
        return NativeAnswer(encode(data), data, provider.name)

    async def open(self, provider: Provider, target: Target, key: str | None) -> Opened:
        """One attempt to open a stream at `target`: returns once its first frame arrived."""
        if self.passes(provider):
            opener = provider.stream_native  # type: ignore[attr-defined]
            frames: AsyncGenerator[bytes, None] = opener(
                self.api, {**self.body, "model": target.model}, api_key=key, headers=self.headers
            )
        else:
            request = self._translated(provider.kind)
            if not isinstance(request, ChatRequest):
                raise ValueError(f"stream: {self.api} does not stream")
            chunks = provider.stream(request, model=target.model, api_key=key)
            writer = cross.frame_writer(self.api, self.body, model=target.model)
            frames = _written(chunks, writer)
        return await first_of(frames)


async def _written(
    chunks: AsyncGenerator[ChatChunk, None], writer: cross.FrameWriter
) -> AsyncGenerator[bytes, None]:
    """Normalised chunks as the body format's frames; nothing before the first chunk, so a
    failure before output begins can still fall back."""
    try:
        try:
            first = await anext(chunks)
        except StopAsyncIteration:
            return
        yield writer.start() + writer.chunk(first)
        async for chunk in chunks:
            frame = writer.chunk(chunk)
            if frame:
                yield frame
        yield writer.end()
    finally:
        await chunks.aclose()


def _problem(exc: wire.WireError) -> str:
    text = str(exc)
    field, sep, problem = text.partition(": ")
    return problem if sep and field == exc.param else text
