"""Per-tenant resilience for LLM calls: breakers, retries and fallback chains."""

from resilience.breaker import BreakerSnapshot, CircuitBreaker, Permit
from resilience.errors import ErrorKind
from resilience.events import AuditSink, BreakerState, BreakerTransition, TransitionReason
from resilience.exceptions import CircuitOpenError, ProviderError, ResilienceError
from resilience.policies import BreakerPolicy
from resilience.registry import BreakerRegistry

__all__ = [
    "AuditSink",
    "BreakerPolicy",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "CircuitOpenError",
    "ErrorKind",
    "Permit",
    "ProviderError",
    "ResilienceError",
    "TransitionReason",
]
