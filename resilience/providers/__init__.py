"""Provider adapters: one small async interface over the `anthropic` and `openai` SDKs.

The protocol lives in `resilience.providers.base`, the adapters in
`resilience.providers.anthropic` and `resilience.providers.openai`, and what they are
built from in `resilience.providers.settings`; each SDK is imported only with its
adapter, so `build_provider` imports the one it builds.
"""

from __future__ import annotations

import httpx2

from resilience.providers.base import Provider
from resilience.providers.settings import Location, ProviderKind, ProviderSettings
from resilience.types import ProviderName

__all__ = ["Location", "Provider", "ProviderKind", "ProviderSettings", "build_provider"]


def build_provider(
    name: ProviderName,
    settings: ProviderSettings,
    *,
    http_client: httpx2.AsyncClient | None = None,
) -> Provider:
    """The adapter for `settings.kind`, built explicitly (no SDK environment defaults, no
    SDK retries).

    Args:
        name: the provider's name in config, routes and breakers.
        settings: how to reach it (validated when it was made).
        http_client: a shared pool; None creates one, closed by `aclose()`.
    """
    if settings.kind == "anthropic":
        from resilience.providers.anthropic import AnthropicProvider

        return AnthropicProvider(name, settings, http_client=http_client)
    from resilience.providers.openai import OpenAIProvider

    return OpenAIProvider(name, settings, http_client=http_client)
