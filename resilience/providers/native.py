"""Requests in a provider's own format, sent as they are and answered as the upstream gave.

The gateway's same-format path (an OpenAI body to an OpenAI-compatible provider, an
Anthropic body to an Anthropic one) and `ResilientClient.complete_native` use this: the
body reaches the upstream with every field the caller sent (only `model` is the
target's), and the answer comes back byte for byte, streams frame by frame. Nothing is
parsed into the normalised model, so nothing a client sent can be lost on the way.

The request is built once per call from what the SDK client would send (its URL, its
headers, the key's auth header, its timeout: `Channel`) and sent on the provider's one
connection pool, so the SDK's per-request machinery (options models, URL merging, its
retry loop) is skipped; a non-2xx answer raises the SDK's own status error, made by the
SDK from the response, so `resilience.classify` reads a failure as it reads any other.
What is checked on the way back is only what the walk needs: a JSON object for an
answer; for a stream, its error events and its end marker (`[DONE]` or a finish_reason
for OpenAI, `message_stop` for Anthropic), without which the stream raises
`StreamTruncatedError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import httpx2

from resilience.errors import StreamTruncatedError
from resilience.providers import http1
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
    """The body as compact UTF-8 JSON; what JSON cannot hold raises before anything is sent
    (`ValueError`: a lone surrogate, NaN or an infinity, as the SDKs refuse them)."""
    return json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()


class Channel:
    """What one SDK client sends with every request, computed once per client: the URL of
    each endpoint, the headers (auth included) and the timeout. With a `pool`
    (`resilience.providers.http1`) the request goes out on it; without, on `http`."""

    __slots__ = (
        "_headers",
        "_lowered",
        "_prepared",
        "_root",
        "_urls",
        "http",
        "pool",
        "sdk",
        "timeout",
    )

    def __init__(
        self,
        sdk: openai.AsyncOpenAI | anthropic.AsyncAnthropic,
        http: httpx2.AsyncClient,
        pool: http1.Pool | None = None,
    ) -> None:
        self.sdk = sdk
        self.http = http
        self.pool = pool
        merged = {**sdk.default_headers, **sdk.auth_headers}
        self._headers = {k: v for k, v in merged.items() if isinstance(v, str)}
        self._root = str(sdk.base_url).rstrip("/")
        self._urls: dict[NativeApi, httpx2.URL] = {}
        self._lowered = frozenset(name.lower() for name in self._headers)
        self._prepared: dict[NativeApi, http1.Prepared] = {}
        timeout = sdk.timeout
        self.timeout = (
            timeout.as_dict()
            if isinstance(timeout, httpx2.Timeout)
            else httpx2.Timeout(timeout).as_dict()
        )

    def url(self, api: NativeApi) -> httpx2.URL:
        url = self._urls.get(api)
        if url is None:
            url = self._urls[api] = httpx2.URL(self._root + PATHS[api])
        return url

    def request(
        self, api: NativeApi, body: Mapping[str, Any], headers: Mapping[str, str] | None
    ) -> httpx2.Request:
        sent = {**self._headers, **headers} if headers else self._headers
        return httpx2.Request(
            "POST",
            self.url(api),
            headers=sent,
            content=encode(body),
            extensions={"timeout": self.timeout},
        )

    async def open(
        self, api: NativeApi, body: Mapping[str, Any], headers: Mapping[str, str] | None
    ) -> Answer:
        """The answer, its body unread; a non-2xx one raises the SDK's status error."""
        if self.pool is not None:
            return await self._open_pooled(self.pool, api, body, headers)
        response = await self.http.send(self.request(api, body, headers), stream=True)
        if not 200 <= response.status_code < 300:
            try:
                await response.aread()
            finally:
                await response.aclose()
            raise self.sdk._make_status_error_from_response(response)
        return Answer(response, response)

    async def _open_pooled(
        self,
        pool: http1.Pool,
        api: NativeApi,
        body: Mapping[str, Any],
        headers: Mapping[str, str] | None,
    ) -> Answer:
        extra = headers or None
        prepared = self._prepared.get(api)
        if prepared is None:
            prepared = self._prepared[api] = pool.prepare("POST", self._target(api), self._headers)
        if headers and any(name.lower() in self._lowered for name in headers):
            # the caller's own value wins over the client's, as in `request`
            prepared = pool.prepare("POST", self._target(api), {**self._headers, **headers})
            extra = None
        answer = await pool.send(prepared, encode(body), extra=extra)
        if not 200 <= answer.status_code < 300:
            try:
                raw = await answer.aread_raw()  # httpx2 decodes it, by its headers
            finally:
                await answer.aclose()
            response = self._as_httpx(api, answer, raw)
            raise self.sdk._make_status_error_from_response(response)
        return Answer(answer, None, lambda: self._as_httpx(api, answer, b""))

    def _target(self, api: NativeApi) -> str:
        """The request line's target of `api`: the base URL's path and the endpoint's."""
        return self.url(api).raw_path.decode("ascii")

    def _as_httpx(self, api: NativeApi, answer: http1.Response, raw: bytes) -> httpx2.Response:
        """The answer as httpx2's type, for the SDK's error constructors (failures only)."""
        return httpx2.Response(
            answer.status_code,
            headers=answer.headers,
            content=raw,
            request=httpx2.Request("POST", self.url(api)),
        )


class _Body(Protocol):
    def aiter_bytes(self) -> AsyncIterator[bytes]: ...

    async def aread(self) -> bytes: ...

    async def aclose(self) -> None: ...


class Answer:
    """An answer being read, from either client; `httpx()` is it as httpx2's
    `Response` (built only when an error needs one)."""

    __slots__ = ("_httpx", "_make", "body")

    def __init__(
        self,
        body: _Body,
        response: httpx2.Response | None,
        make: Callable[[], httpx2.Response] | None = None,
    ) -> None:
        self.body = body
        self._httpx = response
        self._make = make

    def httpx(self) -> httpx2.Response:
        if self._httpx is None:
            assert self._make is not None
            self._httpx = self._make()
        return self._httpx


async def send(
    channel: Channel,
    api: NativeApi,
    body: Mapping[str, Any],
    *,
    provider: ProviderName,
    headers: Mapping[str, str] | None,
) -> NativeAnswer:
    """One request, answered whole; a non-2xx answer raises the SDK's status error."""
    answer = await channel.open(api, body, headers)
    try:
        raw = await answer.body.aread()
    finally:
        await answer.body.aclose()
    data = json.loads(raw)  # a JSONDecodeError is invalid_response, as for any answer
    if not isinstance(data, dict):
        text = raw.decode(errors="replace")
        raise json.JSONDecodeError("the answer is not a JSON object", text, 0)
    return NativeAnswer(raw, data, provider)


async def open_stream(
    channel: Channel,
    api: NativeApi,
    body: Mapping[str, Any],
    *,
    provider: ProviderName,
    headers: Mapping[str, str] | None,
) -> AsyncGenerator[bytes, None]:
    """The answer's SSE events, checked for error events and the end marker."""
    answer = await channel.open(api, body, headers)
    try:
        async for frame in checked_events(channel, api, answer, provider):
            yield frame
    finally:
        await answer.body.aclose()


def checked_events(
    channel: Channel, api: NativeApi, answer: Answer, provider: ProviderName
) -> AsyncIterator[bytes]:
    """An opened stream's SSE events: an error event raises what the SDK would raise for
    it, a body that ends before the end marker `StreamTruncatedError`; after the marker
    the rest of the body is drained."""
    if api == "anthropic.messages":
        return _anthropic_events(channel.sdk, answer, provider)
    return _openai_events(answer, provider)


DRAIN_S = 0.1
"""How long to keep reading after a stream's end marker so the connection can be reused."""


async def drain(events: AsyncIterator[object]) -> None:
    """Read what follows the end marker (normally just the body's end), briefly, ignoring
    errors.

    The answer is complete by then: nothing that happens after it may turn it into a
    failure. Reading to the body's end lets HTTP/1.1 put the connection back in the pool;
    a stream left unread there closes its connection, and the next call opens another (a
    TLS handshake, for a provider on the internet)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(DRAIN_S):
            async for _ in events:
                pass


_FINISHED = re.compile(rb'"finish_reason"\s*:\s*"')


async def _openai_events(answer: Answer, provider: ProviderName) -> AsyncIterator[bytes]:
    import openai

    finished = False
    frames = events(answer.body.aiter_bytes())
    async for frame in frames:
        data = event_data(frame)
        if data == b"[DONE]":
            yield frame
            await drain(frames)
            return
        if data.startswith(b'{"error"') or (b'"error"' in data[:40]):
            parsed = _json_or_none(data)
            if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
                error = parsed["error"]
                raise openai.APIError(
                    str(error.get("message") or "error event in the stream"),
                    answer.httpx().request,
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
    answer: Answer,
    provider: ProviderName,
) -> AsyncIterator[bytes]:
    frames = events(answer.body.aiter_bytes())
    async for frame in frames:
        name = _event(frame)
        if name == b"message_stop":
            yield frame
            await drain(frames)
            return
        if name == b"error":
            data = event_data(frame)
            body = _json_or_none(data)
            message = data.decode(errors="replace")
            # what the SDK raises for the same event, so it is classified the same way
            raise sdk._make_status_error(message, body=body, response=answer.httpx())
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


def event_data(frame: bytes) -> bytes:
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
