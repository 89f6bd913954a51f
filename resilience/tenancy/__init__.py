"""Who is calling: the tenant in a contextvar, the ASGI middleware that sets it, the
resolvers that find it in a request, and the directories that list tenants and policies."""

from resilience.tenancy.context import (
    current_request_id,
    current_tenant,
    current_tenant_or_none,
    tenant_scope,
)
from resilience.tenancy.directory import CachedTenants, ConfigTenants, TenantLookup
from resilience.tenancy.middleware import (
    ANTHROPIC_ERRORS,
    OPENAI_ERRORS,
    ErrorFormat,
    TenantMiddleware,
)
from resilience.tenancy.policy import TenantPolicy
from resilience.tenancy.resolvers import ApiKeyResolver, HeaderResolver

__all__ = [
    "ANTHROPIC_ERRORS",
    "OPENAI_ERRORS",
    "ApiKeyResolver",
    "CachedTenants",
    "ConfigTenants",
    "ErrorFormat",
    "HeaderResolver",
    "TenantLookup",
    "TenantMiddleware",
    "TenantPolicy",
    "current_request_id",
    "current_tenant",
    "current_tenant_or_none",
    "tenant_scope",
]
