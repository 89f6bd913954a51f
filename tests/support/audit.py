"""Audit test data: a fixed start time and breaker events to write."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from resilience.breaker.events import BreakerState, BreakerTransition, TransitionReason
from resilience.errors import ErrorKind

T0 = datetime(2026, 11, 16, 9, 0, tzinfo=UTC)  # a Monday


def event(
    tenant: str,
    provider: str,
    source: str,
    target: str,
    reason: str,
    minutes: float,
    *,
    kind: ErrorKind | None = None,
    actor: str | None = None,
    failures: int = 0,
    cooldown_s: float | None = None,
) -> BreakerTransition:
    return BreakerTransition(
        tenant_id=tenant,
        provider=provider,
        from_state=BreakerState(source),
        to_state=BreakerState(target),
        reason=TransitionReason(reason),
        occurred_at=T0 + timedelta(minutes=minutes),
        failures=failures,
        error_kind=kind,
        cooldown_s=cooldown_s,
        actor=actor,
    )
