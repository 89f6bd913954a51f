"""`TenantPolicy`: what one tenant may use, whoever stores it (the TOML, the app's database).

Here rather than beside the client so that a tenant directory (`resilience.tenancy.directory`)
can build one without importing the client; the client re-exports it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from resilience.types import ProviderName

if TYPE_CHECKING:
    from resilience.routing.routes import Route


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantPolicy:
    """What one tenant may use: its own routes, its own provider keys, request and token
    rates, cloud or not."""

    local_only: bool = False
    routes: Mapping[str, Route] = field(default_factory=dict)
    api_keys: Mapping[ProviderName, str] = field(default_factory=dict)
    rpm: Mapping[ProviderName, float] = field(default_factory=dict)
    """Requests per minute this tenant may send to a provider (0 or absent: unlimited)."""
    tpm: Mapping[ProviderName, float] = field(default_factory=dict)
    """Tokens per minute (input and output) this tenant may use at a provider (0 or
    absent: unlimited)."""
    max_concurrent: Mapping[ProviderName, int] = field(default_factory=dict)
    """Calls this tenant may have at a provider at once, in flight and waiting, instead of
    the bulkheads' default (`BulkheadPolicy.max_concurrent_per_tenant`)."""

    def __repr__(self) -> str:
        keys = sorted(self.api_keys)
        routes = sorted(self.routes)
        return (
            f"TenantPolicy(local_only={self.local_only}, routes={routes}, "
            f"api_keys_for={keys}, rpm={dict(self.rpm)}, tpm={dict(self.tpm)}, "
            f"max_concurrent={dict(self.max_concurrent)})"
        )


DEFAULT_POLICY = TenantPolicy()
"""A tenant no directory lists: no overrides, no limits of its own."""
