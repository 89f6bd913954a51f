"""Per-tenant resilience for LLM calls: breakers, retries and fallback chains."""

from resilience.audit.sink import DatabaseSink
from resilience.breaker.events import AuditSink, BreakerState, BreakerTransition, TransitionReason
from resilience.breaker.machine import BreakerSnapshot, CircuitBreaker, Permit
from resilience.breaker.policy import BreakerPolicy
from resilience.breaker.registry import BreakerRegistry
from resilience.classify import classify, parse_retry_after
from resilience.client.outcomes import OutcomeStatus, Result, TargetOutcome
from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.client.streaming import ResilientStream
from resilience.config.load import load_config
from resilience.config.schema import ConfigError
from resilience.deadline import Deadline
from resilience.errors import (
    AllTargetsFailed,
    CircuitOpenError,
    Classification,
    ErrorKind,
    InvalidRequestError,
    NoTenantError,
    ProviderError,
    ResilienceError,
    TenantLookupFailed,
    UnknownRouteError,
)
from resilience.models import ChatChunk, ChatRequest, ChatResponse, EmbeddingRequest, Message
from resilience.providers import build_provider
from resilience.providers.native import NativeAnswer
from resilience.providers.settings import ProviderSettings
from resilience.retry import RetryPolicy
from resilience.routing.health import HealthBoard, HealthSnapshot
from resilience.routing.routes import Group, Route, Strategy, Target
from resilience.tenancy.context import current_tenant, tenant_scope
from resilience.tenancy.directory import CachedTenants, ConfigTenants, TenantLookup
from resilience.tenancy.middleware import TenantMiddleware
from resilience.tenancy.resolvers import ApiKeyResolver, HeaderResolver

__all__ = [
    "AllTargetsFailed",
    "ApiKeyResolver",
    "AuditSink",
    "BreakerPolicy",
    "BreakerRegistry",
    "BreakerSnapshot",
    "BreakerState",
    "BreakerTransition",
    "CachedTenants",
    "ChatChunk",
    "ChatRequest",
    "ChatResponse",
    "CircuitBreaker",
    "CircuitOpenError",
    "Classification",
    "ConfigError",
    "ConfigTenants",
    "DatabaseSink",
    "Deadline",
    "EmbeddingRequest",
    "ErrorKind",
    "Group",
    "HeaderResolver",
    "HealthBoard",
    "HealthSnapshot",
    "InvalidRequestError",
    "Message",
    "NativeAnswer",
    "NoTenantError",
    "OutcomeStatus",
    "Permit",
    "ProviderError",
    "ProviderSettings",
    "ResilienceError",
    "ResilientClient",
    "ResilientStream",
    "Result",
    "RetryPolicy",
    "Route",
    "Strategy",
    "Target",
    "TargetOutcome",
    "TenantLookup",
    "TenantLookupFailed",
    "TenantMiddleware",
    "TenantPolicy",
    "TransitionReason",
    "UnknownRouteError",
    "build_provider",
    "classify",
    "current_tenant",
    "load_config",
    "parse_retry_after",
    "tenant_scope",
]
