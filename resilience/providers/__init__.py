"""Provider adapters: one small async interface over the `anthropic` and `openai` SDKs.

The protocol lives in `resilience.providers.base`, the adapters in
`resilience.providers.anthropic` and `resilience.providers.openai`; each SDK is
imported only with its adapter, so `build_provider` imports the one it builds.
"""

from __future__ import annotations

import httpx2

from resilience.providers.base import Location, Provider, ProviderKind
from resilience.providers.limits import DEFAULT_MAX_RESPONSE_BYTES
from resilience.types import ProviderName

__all__ = ["Location", "Provider", "ProviderKind", "build_provider"]


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
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
) -> Provider:
    """An adapter for `kind`, built explicitly (no SDK environment defaults, no SDK retries).

    Args:
        name: the provider's name in config, routes and breakers.
        kind: which SDK speaks to it; "openai" covers any OpenAI-compatible server.
        api_key: the provider's own key; None for servers that need none.
        base_url: anthropic: the host root; openai: the URL ending in `/v1`.
            None: the vendor's public API.
        timeout_s: per request (connect at most 5 s).
        location: "local" providers stay eligible for `local_only` tenants.
        can_embed: openai kind only; None means True. Anthropic has no embeddings API.
        http_client: a shared pool; None creates one, closed by `aclose()`.
        max_response_bytes: a larger answer fails the attempt (`invalid_response`).
    """
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
            max_response_bytes=max_response_bytes,
        )
    if kind != "openai":
        raise ValueError(f"providers.{name}.kind: expected anthropic or openai, got {kind!r}")
    from resilience.providers.openai import OpenAIProvider

    return OpenAIProvider(
        name,
        api_key=api_key,
        base_url=base_url,
        timeout_s=timeout_s,
        location=location,
        can_embed=True if can_embed is None else can_embed,
        http_client=http_client,
        max_response_bytes=max_response_bytes,
    )
