"""The `Provider` protocol: what the client needs from one LLM provider.

Like an httpx transport: one small async interface, an adapter per SDK. An
adapter raises the SDK's own exceptions unchanged (`resilience.errors.classify`
translates them in one place) except for a stream that ends cleanly without
its end marker, which raises `StreamTruncatedError`. SDK retries are off:
retrying is the client's job alone, so attempts never multiply.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Literal, Protocol

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


class SharedPool:
    """One httpx2 pool per provider and one SDK client per API key on top of it.

    Per-tenant keys get their own SDK client (the key is part of the client),
    but every client of a provider shares the connection pool.
    """

    def __init__(self, timeout_s: float, http_client: httpx2.AsyncClient | None) -> None:
        self.owns_http = http_client is None
        self.http = http_client or httpx2.AsyncClient(
            timeout=httpx2.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            limits=httpx2.Limits(max_connections=200, max_keepalive_connections=50),
        )

    async def aclose(self) -> None:
        if self.owns_http:
            await self.http.aclose()
