"""Per-tenant resilience for LLM calls: breakers, retries and fallback chains."""

from resilience.breaker import BreakerSnapshot, CircuitBreaker, Permit
from resilience.deadline import Deadline
from resilience.errors import Classification, ErrorKind, classify, parse_retry_after
from resilience.events import AuditSink, BreakerState, BreakerTransition, TransitionReason
from resilience.exceptions import (
    AllTargetsFailed,
    CircuitOpenError,
    NoTenantError,
    ProviderError,
    ResilienceError,
    UnknownRouteError,
)
from resilience.policies import BreakerPolicy, RetryPolicy
from resilience.registry import BreakerRegistry
from resilience.resolvers import ApiKeyResolver, HeaderResolver
from resilience.routes import Route, Target
from resilience.tenancy import TenantMiddleware, current_tenant, tenant_scope

__all__ = [
    "AllTargetsFailed",
    "ApiKeyResolver",
    "AuditSink",
    "BreakerPolicy",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classification",
    "Deadline",
    "ErrorKind",
    "HeaderResolver",
    "NoTenantError",
    "Permit",
    "ProviderError",
    "ResilienceError",
    "RetryPolicy",
    "Route",
    "Target",
    "TenantMiddleware",
    "TransitionReason",
    "UnknownRouteError",
    "classify",
    "current_tenant",
    "parse_retry_after",
    "tenant_scope",
]
