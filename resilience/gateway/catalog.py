"""What `GET /v1/models` lists: the routes and `provider:model` targets a tenant may use.

Read from the client exactly as `ResilientClient.route_for` resolves a name for the
tenant: the tenant's own route of a name hides the global one, and a `local_only` tenant
sees only targets on local providers (a route none of whose targets it may use is left
out: calling it could only fail). A caller may also name any `provider:model` of a
configured provider; only the targets the routes name are listed, since no model list is
asked of the providers.
"""

from __future__ import annotations

from dataclasses import dataclass

from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.routing.routes import Route
from resilience.types import TenantId

ROUTE_OWNER = "resilience"
"""`owned_by` of a route: the gateway's own name for a set of targets."""


@dataclass(frozen=True, slots=True)
class Listed:
    """One name a tenant may send as `model`."""

    id: str
    owned_by: str
    """`resilience` for a route, the provider's name for a `provider:model` target."""


def models_for(client: ResilientClient, tenant: TenantId) -> list[Listed]:
    """The routes (by name) then the targets (by name) this tenant may call."""
    policy = client.tenants.get(tenant) or TenantPolicy()
    routes: dict[str, Route] = {**client.routes, **policy.routes}
    names: list[Listed] = []
    targets: dict[str, Listed] = {}
    for name in sorted(routes):
        usable = [
            t
            for t in routes[name].iter_targets()
            if not (policy.local_only and client.providers[t.provider].location == "cloud")
        ]
        if usable:
            names.append(Listed(name, ROUTE_OWNER))
        for target in usable:
            targets.setdefault(str(target), Listed(str(target), target.provider))
    return names + [targets[key] for key in sorted(targets) if key not in routes]
