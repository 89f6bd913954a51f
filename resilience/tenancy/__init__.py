"""Who is calling: the tenant in a contextvar, the ASGI middleware that sets it, and the
resolvers that find it in a request."""

from resilience.tenancy.context import (
    current_request_id,
    current_tenant,
    current_tenant_or_none,
    tenant_scope,
)
from resilience.tenancy.middleware import (
    ANTHROPIC_ERRORS,
    OPENAI_ERRORS,
    ErrorFormat,
    TenantMiddleware,
)
from resilience.tenancy.resolvers import ApiKeyResolver, HeaderResolver

__all__ = [
    "ANTHROPIC_ERRORS",
    "OPENAI_ERRORS",
    "ApiKeyResolver",
    "ErrorFormat",
    "HeaderResolver",
    "TenantMiddleware",
    "current_request_id",
    "current_tenant",
    "current_tenant_or_none",
    "tenant_scope",
]
