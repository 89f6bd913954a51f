"""Who may call: tenants (gateway keys, local_only, overrides, own provider keys) and
admin tokens, checked against each other and against the providers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from resilience.config.checks import (
    NAME,
    as_table,
    describe,
    env_reference,
    flag,
    number,
    only,
    parse_route,
    rpm,
    sha256_hex,
    table,
    tpm,
)
from resilience.config.schema import (
    AdminToken,
    ConfigError,
    ProviderConfig,
    ServerConfig,
    TenantConfig,
)
from resilience.tenancy.resolvers import TENANT_ID

_TENANT_KEYS = frozenset({"api_key_sha256", "local_only", "routes", "providers"})


def parse_tenant(
    tenant: str, value: Any, providers: Mapping[str, ProviderConfig], environ: Mapping[str, str]
) -> TenantConfig:
    path = f"tenants.{tenant}"
    if not TENANT_ID.fullmatch(tenant):
        raise ConfigError(
            path, "tenant ids are 1-64 characters of A-Z a-z 0-9 . _ -, starting with A-Z a-z 0-9"
        )
    data = as_table(value, path)
    only(data, path, _TENANT_KEYS)
    hashes = data.get("api_key_sha256", [])
    if isinstance(hashes, str):
        hashes = [hashes]
    if not isinstance(hashes, list):
        raise ConfigError(f"{path}.api_key_sha256", "expected a list of SHA-256 hex digests")
    digests = tuple(sha256_hex(h, f"{path}.api_key_sha256[{i}]") for i, h in enumerate(hashes))
    local_only = flag(data.get("local_only", False), f"{path}.local_only")
    routes = {
        name: parse_route(name, spec, f"{path}.routes.{name}", providers)
        for name, spec in table(data, "routes", f"{path}.routes").items()
    }
    if local_only:
        local = {p.name for p in providers.values() if p.settings.location == "local"}
        if not local:
            raise ConfigError(
                f"{path}.local_only",
                'no provider has location = "local", so this tenant could never be served',
            )
        for name, route in routes.items():
            if not route.providers & local:
                raise ConfigError(
                    f"{path}.routes.{name}", "the tenant is local_only but no target is local"
                )
    keys: dict[str, str] = {}
    limits: dict[str, float] = {}
    token_limits: dict[str, float] = {}
    caps: dict[str, int] = {}
    for provider, settings in table(data, "providers", f"{path}.providers").items():
        where = f"{path}.providers.{provider}"
        if provider not in providers:
            raise ConfigError(where, f"unknown provider {provider!r}")
        settings = as_table(settings, where)
        only(settings, where, {"api_key_env", "rpm", "tpm", "max_concurrent"})
        env = env_reference(settings.get("api_key_env"), f"{where}.api_key_env", environ)
        if env is not None:
            keys[provider] = env
        limit = rpm(settings.get("rpm", 0), f"{where}.rpm")
        if limit:
            limits[provider] = limit
        tokens = tpm(settings.get("tpm", 0), f"{where}.tpm")
        if tokens:
            token_limits[provider] = tokens
        if "max_concurrent" in settings:
            cap = number(settings["max_concurrent"], f"{where}.max_concurrent", integer=True)
            if cap < 1:
                raise ConfigError(f"{where}.max_concurrent", f"must be >= 1, got {cap!r}")
            caps[provider] = int(cap)
    return TenantConfig(
        tenant_id=tenant,
        api_key_sha256=digests,
        local_only=local_only,
        routes=routes,
        provider_keys=keys,
        rpm=limits,
        tpm=token_limits,
        max_concurrent=caps,
    )


def check_key_hashes(tenants: Mapping[str, TenantConfig]) -> None:
    """A gateway key must name one tenant: a shared digest would pick one at random."""
    owner: dict[str, str] = {}
    for tenant in tenants.values():
        for i, digest in enumerate(tenant.api_key_sha256):
            if digest in owner:
                other = owner[digest]
                whose = "listed twice" if other == tenant.tenant_id else f"also tenant {other!r}'s"
                raise ConfigError(f"tenants.{tenant.tenant_id}.api_key_sha256[{i}]", whose)
            owner[digest] = tenant.tenant_id


def parse_admin_token(
    name: str,
    value: Any,
    tenants: Mapping[str, TenantConfig],
    server: ServerConfig,
    earlier: Mapping[str, AdminToken],
) -> AdminToken:
    path = f"admin.tokens.{name}"
    if not NAME.fullmatch(name):
        raise ConfigError(path, "token names are 1-64 characters of A-Z a-z 0-9 . _ -")
    data = as_table(value, path)
    only(data, path, {"token_sha256", "tenant"})
    if "token_sha256" not in data:
        raise ConfigError(f"{path}.token_sha256", "missing; the SHA-256 hex digest of the token")
    digest = sha256_hex(data["token_sha256"], f"{path}.token_sha256")
    for other in earlier.values():
        if other.token_sha256 == digest:
            raise ConfigError(f"{path}.token_sha256", f"same token as admin.tokens.{other.name}")
    for tenant in tenants.values():
        if digest in tenant.api_key_sha256:
            raise ConfigError(
                f"{path}.token_sha256",
                f"same secret as a gateway key of tenant {tenant.tenant_id!r}; use distinct ones",
            )
    tenant_id = data.get("tenant")
    if tenant_id is not None:
        if not isinstance(tenant_id, str) or not TENANT_ID.fullmatch(tenant_id):
            raise ConfigError(f"{path}.tenant", f"not a valid tenant id: {describe(tenant_id)}")
        if server.tenant_from == "api_key" and tenant_id not in tenants:
            raise ConfigError(f"{path}.tenant", f"unknown tenant {tenant_id!r}")
    return AdminToken(name=name, token_sha256=digest, tenant=tenant_id)


def warnings_for(server: ServerConfig, tenants: Mapping[str, TenantConfig]) -> tuple[str, ...]:
    keyed = [t for t in tenants.values() if t.api_key_sha256]
    if server.tenant_from == "header":
        return tuple(
            f'tenants.{t.tenant_id}.api_key_sha256: ignored, server.tenant_from is "header"'
            for t in keyed
        )
    if not keyed:
        return (
            'server.tenant_from: "api_key" but no tenant has api_key_sha256, so the gateway '
            "answers 401 to every request",
        )
    return ()
