"""The circuit breaker: its policy, its state machine, the transitions it reports.

Where breakers live (`store`) and how they are found per (tenant, provider) (`registry`)
are this package's submodules; this module exports only the breaker itself, so importing
it loads neither a store nor Redis.
"""

from resilience.breaker.events import AuditSink, BreakerState, BreakerTransition, TransitionReason
from resilience.breaker.machine import BreakerSnapshot, CircuitBreaker, Permit
from resilience.breaker.policy import BreakerPolicy

__all__ = [
    "AuditSink",
    "BreakerPolicy",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "Permit",
    "TransitionReason",
]
