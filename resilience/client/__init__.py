"""`ResilientClient`: a route's walk over its targets, each attempt through a breaker and
retries, streamed or not, with what happened to each target in the result."""

from resilience.client.outcomes import OutcomeStatus, Result, TargetOutcome
from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.client.streaming import ResilientStream

__all__ = [
    "OutcomeStatus",
    "ResilientClient",
    "ResilientStream",
    "Result",
    "TargetOutcome",
    "TenantPolicy",
]
