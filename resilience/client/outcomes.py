"""What happened at each target of a route: results and the reasons a call moved on."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Generic, TypeVar

from resilience.errors import ErrorKind
from resilience.routing.routes import Target

T = TypeVar("T")


class OutcomeStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    """Called, and failed after its retries; `kind` says how."""
    BREAKER_OPEN = "breaker_open"
    """Skipped without a call: the pair's (or the provider-wide) breaker refused."""
    LOCAL_ONLY = "local_only"
    """Skipped: the tenant is local_only and the provider is in the cloud."""
    CANNOT_EMBED = "cannot_embed"
    """Skipped: the provider has no embeddings API."""
    RPM_LIMITED = "rpm_limited"
    """Skipped without a call: the tenant's or the provider's requests-per-minute bucket
    was empty (`retry_after_s`: until it has a token)."""
    TPM_LIMITED = "tpm_limited"
    """Skipped without a call: the tenant's (`message`: `tenant_limit`) or the provider's
    (`provider_limit`) tokens-per-minute bucket did not hold the call's estimate
    (`retry_after_s`: until it does)."""
    BULKHEAD_FULL = "bulkhead_full"
    """Skipped without a call: the provider's concurrency gate had no slot for this tenant
    (`message`: `tenant_limit`, its own cap; `provider_limit`, the gate was full for the
    wait); never a failure on any breaker."""
    CANNOT_CARRY = "cannot_carry"
    """Skipped without a call: the request has a field this target cannot carry (a native
    call crossing formats); `message` names it."""
    DEADLINE = "deadline"
    """Skipped or cut short: the request's deadline ran out."""


@dataclass(frozen=True, slots=True)
class TargetOutcome:
    target: Target
    status: OutcomeStatus
    attempts: int = 0
    kind: ErrorKind | None = None
    status_code: int | None = None
    retry_after_s: float | None = None
    """For a refused or rate-limited target: seconds until it may be tried again."""
    message: str = ""

    def as_dict(self) -> dict[str, object]:
        return {
            "target": str(self.target),
            "status": str(self.status),
            "attempts": self.attempts,
            "kind": str(self.kind) if self.kind else None,
            "status_code": self.status_code,
            "retry_after_s": self.retry_after_s,
            "message": self.message,
        }


@dataclass(frozen=True, slots=True)
class Result(Generic[T]):
    """A provider's answer and how the route got there."""

    value: T
    target: Target
    attempts: int
    """Attempts over the whole route, the successful one included."""
    outcomes: tuple[TargetOutcome, ...]

    @property
    def fallbacks(self) -> int:
        """Targets tried or skipped before the one that answered."""
        return len(self.outcomes) - 1
