"""FastAPI's side: `CurrentTenant`, the tenant of the request as a dependency, and its scheme.

    @app.post("/summarise")
    async def summarise(tenant: CurrentTenant) -> dict[str, str]: ...

The tenant itself comes from `TenantMiddleware` (its contextvar, `current_tenant()`): the
middleware refused a request without a valid key before FastAPI ran, so the dependency only
reads it. Where it finds none (a path the middleware exempts, an app without it) it raises
`NoTenantError`, which `exception_handlers()` answers 401 `missing_tenant`.

The dependency declares `tenant_api_key`, an HTTP bearer scheme with `auto_error=False`,
so the OpenAPI document lists the scheme and `/docs` shows "Authorize" for the routes
that use `CurrentTenant`; the scheme never refuses a request itself (the middleware
decides, and also takes `x-api-key`).

Needs the `fastapi` extra: `pip install 'llm-tenant-resilience[fastapi]'`.
"""

from __future__ import annotations

from typing import Annotated

from resilience.extras import missing
from resilience.tenancy.context import current_tenant
from resilience.types import TenantId

try:
    from fastapi import Depends, Security
    from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
except ImportError as exc:  # pragma: no cover - the extra is installed in every test run
    raise missing("fastapi", "fastapi", "resilience.embed.fastapi") from exc

__all__ = ["CurrentTenant", "current_tenant_dependency", "tenant_api_key"]

tenant_api_key = HTTPBearer(
    scheme_name="TenantApiKey",
    description="The tenant's API key, sent as `Authorization: Bearer <key>`.",
    auto_error=False,
)
"""The security scheme `/docs` shows; `TenantMiddleware` checks the key, not this."""


async def current_tenant_dependency(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(tenant_api_key)],
) -> TenantId:
    """The tenant `TenantMiddleware` resolved; `NoTenantError` when there is none."""
    return current_tenant()


CurrentTenant = Annotated[TenantId, Depends(current_tenant_dependency)]
"""A path operation's parameter `tenant: CurrentTenant` is the request's tenant id."""
