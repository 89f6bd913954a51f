"""Provider adapters: one small async interface over the `anthropic` and `openai` SDKs."""

from resilience.providers.base import Provider, ProviderKind, build_provider

__all__ = ["Provider", "ProviderKind", "build_provider"]
