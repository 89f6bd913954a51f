"""Per-tenant resilience for LLM calls: breakers, retries and fallback chains."""

from resilience.breaker import BreakerSnapshot, CircuitBreaker, Permit
from resilience.client import ResilientClient, TenantPolicy
from resilience.config import ConfigError, load_config
from resilience.deadline import Deadline
from resilience.errors import Classification, ErrorKind, classify, parse_retry_after
from resilience.events import AuditSink, BreakerState, BreakerTransition, TransitionReason
from resilience.exceptions import (
    AllTargetsFailed,
    CircuitOpenError,
    InvalidRequestError,
    NoTenantError,
    ProviderError,
    ResilienceError,
    UnknownRouteError,
)
from resilience.health import HealthBoard, HealthSnapshot
from resilience.models import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, Message
from resilience.outcomes import OutcomeStatus, Result, TargetOutcome
from resilience.policies import BreakerPolicy, RetryPolicy
from resilience.registry import BreakerRegistry
from resilience.resolvers import ApiKeyResolver, HeaderResolver
from resilience.routes import Group, Route, Strategy, Target
from resilience.streaming import ResilientStream
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
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classification",
    "ConfigError",
    "Deadline",
    "EmbeddingRequest",
    "ErrorKind",
    "Group",
    "HeaderResolver",
    "HealthBoard",
    "HealthSnapshot",
    "InvalidRequestError",
    "Message",
    "NoTenantError",
    "OutcomeStatus",
    "Permit",
    "ProviderError",
    "ResilienceError",
    "ResilientClient",
    "ResilientStream",
    "Result",
    "RetryPolicy",
    "Route",
    "Strategy",
    "Target",
    "TargetOutcome",
    "TenantMiddleware",
    "TenantPolicy",
    "TransitionReason",
    "UnknownRouteError",
    "classify",
    "current_tenant",
    "load_config",
    "parse_retry_after",
    "tenant_scope",
]
