"""The `Provider` protocol and what the SDK adapters share.

Like an httpx transport: one small async interface, an adapter per SDK, and a
scriptable fake (`resilience.chaos`) for tests. An adapter raises the SDK's own
exceptions unchanged (`resilience.errors.classify` translates them in one place)
except for a stream that ends cleanly without its end marker, which raises
`StreamTruncatedError`. SDK retries are off: retrying is the client's job alone,
so attempts never multiply. The SDK adapters report when a request reaches the
transport (`resilience.providers.sending`), so a failure before it is the caller's.
The factory that picks an adapter lives in `resilience.providers`: the adapters import
this module, so it must not import them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import httpx2

from resilience.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
    FinishReason,
    Usage,
    text_of,
)
from resilience.providers import http1, native
from resilience.providers.limits import cap_response_size
from resilience.providers.sending import track_sending, watch
from resilience.providers.settings import Location as Location
from resilience.providers.settings import ProviderKind as ProviderKind
from resilience.providers.settings import ProviderSettings
from resilience.types import ProviderName

NO_KEY = "unused"
"""Sent when a provider has no key (local servers): the SDKs insist on one, and an
explicit key also stops them reading credentials from the environment."""


class Provider(Protocol):
    """One upstream. `api_key=None` means the provider's own key; a tenant's key otherwise."""

    name: ProviderName
    kind: ProviderKind
    location: Location
    can_embed: bool

    async def complete(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> ChatResponse: ...

    def stream(
        self, request: ChatRequest, *, model: str, api_key: str | None = None
    ) -> AsyncGenerator[ChatChunk, None]:
        """An async generator; nothing is sent before the first `__anext__`, and
        `aclose()` (or cancelling the consumer) closes the upstream response at once."""
        ...

    async def embed(
        self, request: EmbeddingRequest, *, model: str, api_key: str | None = None
    ) -> EmbeddingResponse: ...

    async def aclose(self) -> None:
        """Close the connection pool, if the provider created it."""
        ...


if TYPE_CHECKING:  # the SDKs load only with the adapter that needs them
    import anthropic
    import openai

C = TypeVar("C", "anthropic.AsyncAnthropic", "openai.AsyncOpenAI")

MAX_CLIENTS = 1024
"""SDK clients kept per provider; past this the least recently created goes (they own no
connections, so dropping one costs only its rebuild)."""


class SdkAdapter(Generic[C]):
    """What both adapters share: one httpx2 pool per provider, one SDK client per API key.

    Per-tenant keys get their own SDK client (the key is part of the client),
    but every client of a provider shares the connection pool. The SDK client
    is built explicitly: base URL and timeout set, SDK retries off. `http_client`
    is a shared pool; None creates one, closed by `aclose()`.
    """

    kind: ProviderKind
    can_embed: bool
    default_base_url: str

    def __init__(
        self,
        name: ProviderName,
        settings: ProviderSettings,
        *,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        if settings.kind != self.kind:
            raise ValueError(
                f"kind: {type(self).__name__} speaks {self.kind}, got settings for {settings.kind}"
            )
        self.name = name
        self.settings = settings
        self.location: Location = settings.location
        self.can_embed = settings.can_embed
        self.base_url = settings.base_url or self.default_base_url
        timeout_s = settings.timeout_s
        self.timeout = httpx2.Timeout(timeout_s, connect=min(timeout_s, 5.0))
        self._default_key = settings.api_key or NO_KEY
        self._owns_http = http_client is None
        self.pool: http1.Pool | None = None
        """The provider's keep-alive pool (`resilience.providers.http1`), when this adapter
        makes its connections itself and the lean client reaches the URL as httpx2 would:
        the native path sends on it directly, the SDK client through `PoolTransport`. A
        caller's `http_client` (a proxy, a test transport) is always used as given."""
        if http_client is None and http1.usable_for(self.base_url):
            self.pool = http1.Pool(
                self.base_url,
                http1.Timeouts.of(self.timeout),
                max_connections=200,
                max_idle=50,
                max_response_bytes=settings.max_response_bytes,
            )
            http_client = httpx2.AsyncClient(
                timeout=self.timeout, transport=http1.PoolTransport(self.pool)
            )
        self.http_client = http_client or httpx2.AsyncClient(
            timeout=self.timeout,
            limits=httpx2.Limits(max_connections=200, max_keepalive_connections=50),
        )
        cap_response_size(self.http_client, settings.max_response_bytes)
        track_sending(self.http_client)
        self._clients: dict[str, C] = {}
        self._channels: dict[int, native.Channel] = {}

    def client(self, api_key: str | None = None) -> C:
        """The SDK client for a key (the provider's own when None), on the shared pool."""
        key = api_key or self._default_key
        found = self._clients.get(key)
        if found is None:
            if len(self._clients) >= MAX_CLIENTS:
                del self._clients[next(iter(self._clients))]
            found = self._clients[key] = self._new_client(key)
        return found

    def _new_client(self, api_key: str) -> C:
        raise NotImplementedError

    async def send_native(
        self,
        api: native.NativeApi,
        body: Mapping[str, Any],
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> native.NativeAnswer:
        """`body` as it is, in this provider's own format (`resilience.providers.native`)."""
        watch()  # a failure before the request goes out is the caller's
        self._check_native(api)
        return await native.send(
            self._channel(api_key), api, body, provider=self.name, headers=headers
        )

    def stream_native(
        self,
        api: native.NativeApi,
        body: Mapping[str, Any],
        *,
        api_key: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> AsyncGenerator[bytes, None]:
        """`body` as it is, answered as SSE events passed on as they arrive: the generator
        sends nothing before its first `__anext__`, and no layer of ours sits between it and
        the caller."""
        watch()
        self._check_native(api)
        if api not in native.STREAMING:
            raise ValueError(f"stream: {api} does not stream")
        return native.open_stream(
            self._channel(api_key), api, body, provider=self.name, headers=headers
        )

    async def _send_params(
        self, api: native.NativeApi, params: Mapping[str, Any], api_key: str | None
    ) -> dict[str, Any]:
        """An SDK call's keyword arguments sent as its JSON body, as the SDK would send them
        (`extra_body` merged over the rest), on the provider's connections; the answer's JSON
        object. The SDK's request options and response models are skipped: they cost
        several times the HTTP exchange. Failures are the SDK's own: a status error made by
        the SDK from the answer, a transport's failure wrapped as the SDK wraps it."""
        channel = self._channel(api_key)
        try:
            answer = await native.send(
                channel, api, _body_of(params), provider=self.name, headers=None
            )
        except httpx2.TransportError as exc:
            raise self._transport_failure(exc, httpx2.Request("POST", channel.url(api))) from exc
        return answer.data

    async def _stream_params(
        self, api: native.NativeApi, params: Mapping[str, Any], api_key: str | None
    ) -> AsyncGenerator[dict[str, Any], None]:
        """`_send_params` for a stream: each event's data, a JSON object, as it arrives
        (OpenAI's `[DONE]` left out; data that is not an object raises `ValueError`). An
        error event raises what the SDK raises for it, a stream cut before its end marker
        `StreamTruncatedError`; the rest of the body is read after the marker, so the
        connection goes back to the pool."""
        channel = self._channel(api_key)
        try:
            answer = await channel.open(api, _body_of(params), None)
        except httpx2.TransportError as exc:
            raise self._transport_failure(exc, httpx2.Request("POST", channel.url(api))) from exc
        try:
            async for frame in native.checked_events(channel, api, answer, self.name):
                data = native.event_data(frame)
                if data and data != b"[DONE]":
                    event = json.loads(data)
                    if not isinstance(event, dict):
                        raise ValueError(
                            f"provider {self.name!r} streamed data that is not an object"
                        )
                    yield event
        finally:
            await answer.body.aclose()

    def _transport_failure(self, exc: httpx2.TransportError, request: httpx2.Request) -> Exception:
        """The SDK's `APITimeoutError` or `APIConnectionError` for `exc`."""
        raise NotImplementedError

    def _channel(self, api_key: str | None) -> native.Channel:
        """How the SDK client for this key sends: made with the client, dropped with it."""
        sdk = self.client(api_key)
        found = self._channels.get(id(sdk))
        if found is None or found.sdk is not sdk:
            if len(self._channels) >= MAX_CLIENTS:
                del self._channels[next(iter(self._channels))]
            found = self._channels[id(sdk)] = native.Channel(sdk, self.http_client, self.pool)
        return found

    def _check_native(self, api: native.NativeApi) -> None:
        if native.API_KIND[api] != self.kind:
            raise ValueError(
                f"provider {self.name!r} of kind {self.kind} cannot take {api} as it is"
            )
        if api == "openai.embeddings" and not self.can_embed:
            raise NotImplementedError(f"provider {self.name!r} is configured without embeddings")

    async def aclose(self) -> None:
        if self._owns_http:
            await self.http_client.aclose()  # with the pool under it, when there is one

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, base_url={self.base_url!r})"


def _body_of(params: Mapping[str, Any]) -> dict[str, Any]:
    """An SDK call's keyword arguments as the JSON body the SDK sends: `extra_body` merged
    over the rest."""
    extra = params.get("extra_body")
    body = {k: v for k, v in params.items() if k != "extra_body"}
    if extra:
        body.update(extra)
    return body


def answer_of(
    data: Mapping[str, Any],
    blocks: tuple[dict[str, Any], ...],
    finish: FinishReason,
    raw_stop: str | None,
    usage: Usage,
    provider: ProviderName,
    model: str,
) -> ChatResponse:
    """An answer's normalised blocks and figures as a `ChatResponse`, with the model and id
    the answer's JSON names (`model`, the one asked for, when it names none)."""
    answered, found = data.get("model"), data.get("id")
    return ChatResponse(
        # the usual answer is one text block: its text, without text_of's walk
        text=str(blocks[0]["text"])
        if len(blocks) == 1 and blocks[0].get("type") == "text"
        else text_of(blocks),
        content=blocks,
        finish_reason=finish,
        raw_finish_reason=raw_stop,
        usage=usage,
        provider=provider,
        model=answered if isinstance(answered, str) and answered else model,
        response_id=found if isinstance(found, str) else None,
    )


def tokens(usage: object, key: str) -> int:
    """A token count of an answer's `usage` object; 0 when it has none (the normalised
    `Usage` reads all zeros as not reported)."""
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def without_none(item: dict[str, Any]) -> dict[str, Any]:
    """An answer's object without its null fields, as the SDKs' models dump it."""
    return {k: v for k, v in item.items() if v is not None}


def without_nulls(value: Any) -> Any:
    """`without_none` all the way down, through nested objects and lists: a whole event,
    as the SDKs' models dump it (`model_dump(exclude_none=True)`)."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value]
    return value
