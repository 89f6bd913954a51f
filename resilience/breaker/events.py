"""Breaker transitions and the sinks that receive them.

A `BreakerTransition` is a frozen record of one real state change; the audit
trail stores exactly these. Sinks follow the `AuditSink` protocol: `emit()` is
called synchronously on the event loop, so it must be cheap and must not block;
the database sink queues, the ones here keep or log.
"""

from __future__ import annotations

import enum
import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from resilience.errors import ErrorKind
from resilience.types import ProviderName, TenantId


class BreakerState(enum.StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"


class TransitionReason(enum.StrEnum):
    THRESHOLD = "threshold"
    RETRY_AFTER = "retry_after"
    COOLDOWN_ELAPSED = "cooldown_elapsed"
    PROBE_SUCCEEDED = "probe_succeeded"
    PROBE_FAILED = "probe_failed"
    PROVIDER_WIDE = "provider_wide"
    ADMIN_RESET = "admin_reset"
    ADMIN_OPEN = "admin_open"
    PROCESS_RESTART = "process_restart"
    """Closes a period a dead process left open that no live process holds
    (`resilience.audit.restore`), so `breaker_open_periods` matches what is enforced."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerTransition:
    """One real state change of one breaker: a row of `breaker_events`."""

    tenant_id: TenantId
    provider: ProviderName
    from_state: BreakerState
    to_state: BreakerState
    reason: TransitionReason
    occurred_at: datetime
    failures: int
    error_kind: ErrorKind | None = None
    cooldown_s: float | None = None
    actor: str | None = None
    request_id: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    id: uuid.UUID = field(default_factory=uuid.uuid4)


@runtime_checkable
class AuditSink(Protocol):
    """Receives every transition. Must return quickly and never raise into the caller."""

    def emit(self, event: BreakerTransition) -> None: ...


class MemorySink:
    """Keeps every event in a list: for tests and for small embedded uses."""

    def __init__(self) -> None:
        self.events: list[BreakerTransition] = []

    def emit(self, event: BreakerTransition) -> None:
        self.events.append(event)

    def __repr__(self) -> str:
        return f"MemorySink(events={len(self.events)})"


class LoggingSink:
    """Logs each transition at WARNING (opening) or INFO (anything else)."""

    def __init__(self, logger: logging.Logger | None = None) -> None:
        self._logger = logger or logging.getLogger("resilience.breaker")

    def emit(self, event: BreakerTransition) -> None:
        opening = event.to_state in (BreakerState.OPEN, BreakerState.FORCED_OPEN)
        self._logger.log(
            logging.WARNING if opening else logging.INFO,
            "breaker %s/%s %s -> %s (%s%s)",
            event.tenant_id,
            event.provider,
            event.from_state,
            event.to_state,
            event.reason,
            f", {event.error_kind}" if event.error_kind else "",
            extra={"breaker_event": event},
        )
