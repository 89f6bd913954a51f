"""Who is calling: the tenant and request id of the current request, in contextvars.

Set by `TenantMiddleware` for each request, or by `tenant_scope()` for background work.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager

from resilience.errors import NoTenantError
from resilience.tenancy.resolvers import (
    validate_tenant_id,
)
from resilience.types import TenantId

_tenant: contextvars.ContextVar[TenantId | None] = contextvars.ContextVar(
    "resilience_tenant", default=None
)
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "resilience_request_id", default=None
)


def current_tenant() -> TenantId:
    """The tenant of the current request or `tenant_scope()`; raises `NoTenantError` outside."""
    tenant = _tenant.get()
    if tenant is None:
        raise NoTenantError(
            "no tenant is set: call this inside a request handled by TenantMiddleware, "
            "or wrap background work in tenant_scope(tenant_id)"
        )
    return tenant


def current_tenant_or_none() -> TenantId | None:
    """The current tenant, or None outside a request, `tenant_scope()` or on an exempt path."""
    return _tenant.get()


def current_request_id() -> str | None:
    """The current request's id (from `x-request-id`, or generated), for audit rows and logs."""
    return _request_id.get()


@contextmanager
def tenant_scope(tenant_id: str, *, request_id: str | None = None) -> Iterator[TenantId]:
    """Set the tenant (and optionally a request id) for background jobs.

    A plain `with` works in async code too: tasks created inside inherit the
    tenant. Nested scopes restore the outer one on exit, even on an error.
    """
    tenant = validate_tenant_id(tenant_id)
    token = _tenant.set(tenant)
    id_token = _request_id.set(request_id) if request_id is not None else None
    try:
        yield tenant
    finally:
        if id_token is not None:
            _request_id.reset(id_token)
        _tenant.reset(token)
