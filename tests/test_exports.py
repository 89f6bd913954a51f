"""The public API is deliberate: `resilience.__all__` is sorted, complete and importable."""

from __future__ import annotations

import resilience

DOCUMENTED = {
    "AllTargetsFailed",
    "ResilientClient",
    "Route",
    "Target",
    "Group",
    "Strategy",
    "HealthBoard",
    "load_config",
    "BreakerPolicy",
    "BreakerRegistry",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "ErrorKind",
    "RetryPolicy",
    "TenantMiddleware",
    "classify",
    "current_tenant",
    "tenant_scope",
}


def test_all_is_sorted_and_unique() -> None:
    assert list(resilience.__all__) == sorted(set(resilience.__all__))


def test_every_documented_name_is_exported() -> None:
    assert set(resilience.__all__) >= DOCUMENTED


def test_every_exported_name_exists_and_belongs_to_the_package() -> None:
    for name in resilience.__all__:
        member = getattr(resilience, name)
        assert getattr(member, "__module__", "").startswith("resilience"), name
