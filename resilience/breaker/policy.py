"""The knobs of breakers and retries: frozen value objects, validated on creation.

Defaults: docs/architecture.md, "Breaker rules" and "Retries". Every error names the field
and the bad value, so a config loader can prefix it with the TOML key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def check_positive(owner: object, *names: str, allow_zero: bool = False) -> None:
    for name in names:
        value = getattr(owner, name)
        bad = value < 0 if allow_zero else value <= 0
        infinite = isinstance(value, float) and not math.isfinite(value)
        if isinstance(value, bool) or bad or infinite:
            need = ">= 0" if allow_zero else "> 0"
            raise ValueError(f"{name}: must be {need}, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerPolicy:
    """When a (tenant, provider) breaker opens, how long it stays open, how it probes."""

    failure_threshold: int = 5
    failure_rate: float = 0.5
    """A breaker opens when its failures are also at least this share of its calls in the
    window; a provider-wide streak lives while its failures are at least this share of the
    provider's outcomes since it began (see `provider_wide_streak`)."""
    window_s: float = 60.0
    cooldown_s: float = 30.0
    max_cooldown_s: float = 600.0
    half_open_max_calls: int = 1
    probe_timeout_s: float = 120.0
    provider_wide_min_tenants: int = 3
    """The provider-wide gate opens when this many tenants' breakers opened on provider
    errors within `window_s`, and a streak must span this many tenants; 0: never."""
    provider_wide_streak: int = 10
    """This many provider-scoped failures in one streak, from at least
    `provider_wide_min_tenants` tenants, open the provider-wide gate at once; 0 turns this
    rule off. A streak begins at a provider-scoped failure and ends only when the
    provider's successes since then bring its failures below `failure_rate` of its outcomes
    (at 0.5: successes outnumber failures; at 1.0: any success), so answers to calls sent
    before an outage, which come back among its first failures, do not reset it, while a
    provider failing 1% of calls ends each streak within two successes. It starts over at
    each move of the gate. docs/architecture.md, "Breaker rules"."""

    def __post_init__(self) -> None:
        check_positive(self, "failure_threshold", "window_s", "cooldown_s", "max_cooldown_s")
        check_positive(self, "half_open_max_calls", "probe_timeout_s")
        check_positive(self, "provider_wide_min_tenants", "provider_wide_streak", allow_zero=True)
        if not 0.0 < self.failure_rate <= 1.0:
            raise ValueError(f"failure_rate: must be in (0, 1], got {self.failure_rate!r}")
        if self.max_cooldown_s < self.cooldown_s:
            raise ValueError(
                f"max_cooldown_s: must be >= cooldown_s ({self.cooldown_s!r}), "
                f"got {self.max_cooldown_s!r}"
            )
