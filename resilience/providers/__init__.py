"""Provider adapters: one small async interface over the `anthropic` and `openai` SDKs.

The adapters themselves live in `resilience.providers.anthropic` and
`resilience.providers.openai`; each SDK is imported only with its adapter.
"""

from resilience.providers.base import Location, Provider, ProviderKind, build_provider

__all__ = ["Location", "Provider", "ProviderKind", "build_provider"]
