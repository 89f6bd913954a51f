"""The `Provider` protocol: what the client needs from one LLM provider.

Like an httpx transport: one small async interface, an adapter per SDK. An
adapter raises the SDK's own exceptions unchanged (`resilience.errors.classify`
translates them in one place) except for a stream that ends cleanly without
its end marker, which raises `StreamTruncatedError`. SDK retries are off:
retrying is the client's job alone, so attempts never multiply.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Generic, Literal, Protocol, TypeVar

import httpx2

from resilience.models import (
    ChatChunk,
    ChatRequest,
    ChatResponse,
    EmbeddingRequest,
    EmbeddingResponse,
)
from resilience.types import ProviderName

ProviderKind = Literal["anthropic", "openai"]
Location = Literal["cloud", "local"]


class Provider(Protocol):
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
        """An async generator; `aclose()` closes the upstream response at once."""
        ...

    async def embed(
        self, request: EmbeddingRequest, *, model: str, api_key: str | None = None
    ) -> EmbeddingResponse: ...

    async def aclose(self) -> None: ...


def build_provider(
    name: ProviderName,
    *,
    kind: ProviderKind,
    api_key: str | None,
    base_url: str | None = None,
    timeout_s: float = 60.0,
    location: Location = "cloud",
    can_embed: bool | None = None,
    http_client: httpx2.AsyncClient | None = None,
) -> Provider:
    """An adapter for `kind`, built explicitly (no SDK environment defaults, no SDK retries)."""
    if kind == "anthropic":
        from resilience.providers.anthropic import AnthropicProvider

        if can_embed:
            raise ValueError(f"providers.{name}.embeddings: anthropic has no embeddings API")
        return AnthropicProvider(
            name,
            api_key=api_key,
            base_url=base_url,
            timeout_s=timeout_s,
            location=location,
            http_client=http_client,
        )
    from resilience.providers.openai import OpenAIProvider

    return OpenAIProvider(
        name,
        api_key=api_key,
        base_url=base_url,
        timeout_s=timeout_s,
        location=location,
        can_embed=True if can_embed is None else can_embed,
        http_client=http_client,
    )


if TYPE_CHECKING:  # the SDKs load only with the adapter that needs them
    import anthropic
    import openai

C = TypeVar("C", "anthropic.AsyncAnthropic", "openai.AsyncOpenAI")


class SdkAdapter(Generic[C]):
    """What both adapters share: one httpx2 pool per provider, one SDK client per API key.

    Per-tenant keys get their own SDK client (the key is part of the client),
    but every client of a provider shares the connection pool. The SDK client
    is built explicitly: base URL and timeout set, SDK retries off.
    """

    sdk: type[C]
    default_base_url: str

    def __init__(
        self,
        name: ProviderName,
        *,
        api_key: str | None,
        base_url: str | None = None,
        timeout_s: float = 60.0,
        location: Location = "cloud",
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.name = name
        self.location: Location = location
        self._base_url = base_url or self.default_base_url
        self._timeout_s = timeout_s
        self._default_key = api_key
        self._owns_http = http_client is None
        self._http = http_client or httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            limits=httpx2.Limits(max_connections=200, max_keepalive_connections=50),
        )
        self._clients: dict[str | None, C] = {}

    def client(self, api_key: str | None = None) -> C:
        """The SDK client for a key (the provider's own when None), on the shared pool."""
        found = self._clients.get(api_key)
        if found is None:
            found = self.sdk(
                api_key=api_key or self._default_key or "unused",
                base_url=self._base_url,
                max_retries=0,
                timeout=self._timeout_s,
                http_client=self._http,
            )
            self._clients[api_key] = found
        return found

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, base_url={self._base_url!r})"
