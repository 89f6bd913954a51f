"""Type aliases shared across the package, kept in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

TenantId = str
ProviderName = str
BreakerKey = tuple[TenantId, ProviderName]
Clock = Callable[[], float]
"""Returns seconds. Monotonic clocks time cooldowns; a wall clock stamps audit rows."""
Sleep = Callable[[float], Awaitable[None]]

PROVIDER_WIDE: TenantId = "*"
"""The tenant id of provider-wide breakers and their audit rows."""
