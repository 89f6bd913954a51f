"""Requests in a provider's own format, sent as they are and answered as the upstream gave.

The gateway's same-format path (an OpenAI body to an OpenAI-compatible provider, an
Anthropic body to an Anthropic one) and `ResilientClient.complete_native` use this: the
body reaches the upstream with every field the caller sent (only `model` is the
target's), and the answer comes back byte for byte, streams frame by frame. Nothing is
parsed into the normalised model, so nothing a client sent can be lost on the way.

The request still goes through the SDK (`client.post`, the SDKs' documented way to call
an endpoint they do not wrap): its headers, its errors (so `resilience.classify` reads a
failure as it reads any other) and the provider's one connection pool, with the SDK's own
retries off. What is checked on the way back is only what the walk needs: a JSON object
for an answer; for a stream, its error events and its end marker (`[DONE]` or a
finish_reason for OpenAI, `message_stop` for Anthropic), without which the stream raises
`StreamTruncatedError`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import httpx2

from resilience.errors import StreamTruncatedError
from resilience.providers.settings import ProviderKind
from resilience.types import ProviderName

if TYPE_CHECKING:
    import anthropic
    import openai

NativeApi = Literal[
    "openai.chat", "openai.embeddings", "anthropic.messages", "anthropic.count_tokens"
]
"""An endpoint, by the format of its body: what `complete_native` and `stream_native` take."""

API_KIND: Mapping[NativeApi, ProviderKind] = {
    "openai.chat": "openai",
    "openai.embeddings": "openai",
    "anthropic.messages": "anthropic",
    "anthropic.count_tokens": "anthropic",
}
"""The kind of provider that speaks each endpoint's format as it is."""

PATHS: Mapping[NativeApi, str] = {
    "openai.chat": "/chat/completions",  # under the OpenAI base URL, which ends in /v1
    "openai.embeddings": "/embeddings",
    "anthropic.messages": "/v1/messages",
    "anthropic.count_tokens": "/v1/messages/count_tokens",
}

STREAMING: frozenset[NativeApi] = frozenset({"openai.chat", "anthropic.messages"})
"""The endpoints that can answer as a stream."""

_RAW_STREAM = {"X-Stainless-Raw-Response": "stream"}
"""Asks the SDK for the unread response: the body is then read here, event by event."""


@dataclass(frozen=True, slots=True)
class NativeAnswer:
    """An answer in the request's own format."""

    body: bytes
    """As the upstream sent it (or as translated, when the request crossed formats)."""
    data: dict[str, Any]
    """The same, parsed."""
    provider: ProviderName


@runtime_checkable
class NativeProvider(Protocol):
    """A provider that can send a body in its own format unchanged (the SDK adapters can)."""

    async def send_native(
        self,
        api: NativeApi,
        body: Mapping[str, Any],
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> NativeAnswer: ...

    def stream_native(
        self,
        api: NativeApi,
        body: Mapping[str, Any],
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """SSE events as they arrive, one complete event (its blank line included) per item;
        nothing is sent before the first `__anext__`."""
        ...


def encode(body: Mapping[str, Any]) -> bytes:
    """The body as compact UTF-8 JSON (a lone surrogate raises `UnicodeEncodeError`)."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


async def send(
    sdk: openai.AsyncOpenAI | anthropic.AsyncAnthropic,
    api: NativeApi,
    body: Mapping[str, Any],
    *,
    provider: ProviderName,
    headers: Mapping[str, str] | None,
) -> NativeAnswer:
    """One request, answered whole; a non-2xx answer raises the SDK's status error."""
    response: httpx2.Response = await sdk.post(
        PATHS[api],
        cast_to=httpx2.Response,
        content=encode(body),
        options={"headers": dict(headers)} if headers else {},
    )
    raw = response.content
    data = json.loads(raw)  # a JSONDecodeError is invalid_response, as for any answer
    if not isinstance(data, dict):
        raise json.JSONDecodeError(
            "the answer is not a JSON object", raw.decode(errors="replace"), 0
        )
    return NativeAnswer(raw, data, provider)


async def open_stream(
    sdk: openai.AsyncOpenAI | anthropic.AsyncAnthropic,
    api: NativeApi,
    body: Mapping[str, Any],
    *,
    provider: ProviderName,
    headers: Mapping[str, str] | None,
) -> AsyncGenerator[bytes, None]:
    """The answer's SSE events, checked for error events and the end marker."""
    sent = {**_RAW_STREAM, **headers} if headers else _RAW_STREAM
    opened = await sdk.post(
        PATHS[api],
        cast_to=httpx2.Response,
        content=encode(body),
        options={"headers": sent},
    )
    # the unread response itself (or, in SDK versions that wrap it, in `http_response`)
    response: httpx2.Response = (
        opened if isinstance(opened, httpx2.Response) else opened.http_response
    )
    try:
        if api == "anthropic.messages":
            async for frame in _anthropic_events(sdk, response, provider):
                yield frame
        else:
            async for frame in _openai_events(response, provider):
                yield frame
    finally:
        await response.aclose()


_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')


async def _openai_events(response: httpx2.Response, provider: ProviderName) -> AsyncIterator[bytes]:
    import openai

    finished = False
    async for frame in events(response.aiter_bytes()):
        data = _data(frame)
        if data == b"[DONE]":
            yield frame
            return
        if data.startswith(b'{"error"') or (b'"error"' in data[:40]):
            parsed = _json_or_none(data)
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                error = parsed["error"]
                raise openai.APIError(
                    str(error.get("message") or "error event in the stream"),
                    response.request,
                    body=error,
                )
        if not finished and _FINISHED.search(data):
            finished = True
        yield frame
    # OpenAI ends with [DONE]; some compatible servers stop after the finish_reason
    if not finished:
        raise StreamTruncatedError(
            "openai stream ended without [DONE] or a finish_reason", provider=provider
        )


async def _anthropic_events(
    sdk: openai.AsyncOpenAI | anthropic.AsyncAnthropic,
    response: httpx2.Response,
    provider: ProviderName,
) -> AsyncIterator[bytes]:
    async for frame in events(response.aiter_bytes()):
        name = _event(frame)
        if name == b"message_stop":
            yield frame
            return
        if name == b"error":
            data = _data(frame)
            body = _json_or_none(data)
            message = data.decode(errors="replace")
            # what the SDK raises for the same event, so it is classified the same way
            raise sdk._make_status_error(message, body=body, response=response)
        yield frame
    raise StreamTruncatedError("anthropic stream ended without message_stop", provider=provider)


_BREAK = re.compile(rb"\r\n\r\n|\n\n|\r\r")


async def events(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """Complete SSE events from a byte stream, each with its blank line, as received.

    Bytes after the last blank line (a cut stream) are not an event and are dropped; the
    caller's end-marker check then fails the stream."""
    pending = b""
    async for chunk in chunks:
        # a break can straddle the old bytes and the new: look from just before the join
        start, scan = 0, max(len(pending) - 3, 0)
        pending = pending + chunk if pending else chunk
        while True:
            found = _BREAK.search(pending, scan)
            if found is None:
                break
            yield pending[start : found.end()]
            start = scan = found.end()
        pending = pending[start:]


def _fields(frame: bytes, name: bytes) -> list[bytes]:
    prefix = name + b":"
    out: list[bytes] = []
    for line in frame.splitlines():
        if line.startswith(prefix):
            value = line[len(prefix) :]
            out.append(value[1:] if value.startswith(b" ") else value)
    return out


def _data(frame: bytes) -> bytes:
    """An event's data (its `data:` lines joined as SSE does)."""
    if frame.startswith(b"data: ") and frame.count(b"\n", 0, -2) == 0:  # the usual one-line event
        return frame[6:].rstrip(b"\r\n")
    return b"\n".join(_fields(frame, b"data"))


def _event(frame: bytes) -> bytes:
    names = _fields(frame, b"event")
    return names[-1].strip() if names else b"message"


def _json_or_none(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return None
