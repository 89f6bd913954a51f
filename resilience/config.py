"""The TOML configuration: loaded into frozen objects, every error naming its key.

    load_config("gateway.toml")   # or $RESILIENCE_CONFIG
    ConfigError: routes.chat.targets[1]: unknown provider 'opnai'

Secrets are only ever named (`api_key_env = "ANTHROPIC_API_KEY"`), never
written in the file; a referenced variable that is not set is an error naming
the variable, never showing a value. `DATABASE_URL` and `REDIS_URL` come from
the environment. Every key has a default except providers and routes.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast

from resilience.exceptions import ResilienceError
from resilience.policies import BreakerPolicy, RetryPolicy, field_names
from resilience.resolvers import TENANT_ID
from resilience.routes import Route, Target

_SHA256 = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class ConfigError(ResilienceError, ValueError):
    """A configuration problem; the message starts with the offending key's path."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    tenant_from: Literal["api_key", "header"] = "api_key"
    tenant_header: str = "x-tenant-id"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    name: str
    kind: Literal["anthropic", "openai"]
    api_key_env: str | None = None
    base_url: str | None = None
    timeout_s: float = 60.0
    location: Literal["cloud", "local"] = "cloud"
    embeddings: bool = False
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)

    def api_key(self, environ: Mapping[str, str]) -> str | None:
        return environ.get(self.api_key_env) if self.api_key_env else None


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantConfig:
    tenant_id: str
    api_key_sha256: tuple[str, ...] = ()
    local_only: bool = False
    routes: Mapping[str, Route] = field(default_factory=dict)
    provider_keys: Mapping[str, str] = field(default_factory=dict)
    """Provider name -> the environment variable holding this tenant's own key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminToken:
    name: str
    token_sha256: str
    tenant: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    server: ServerConfig
    breaker: BreakerPolicy
    retry: RetryPolicy
    providers: Mapping[str, ProviderConfig]
    routes: Mapping[str, Route]
    tenants: Mapping[str, TenantConfig]
    admin_tokens: Mapping[str, AdminToken]
    database_url: str | None = field(default=None, repr=False)
    """For SQLAlchemy: `postgresql://` mapped to `postgresql+asyncpg://`."""
    redis_url: str | None = field(default=None, repr=False)

    def tenant_by_key_hash(self) -> dict[str, str]:
        """SHA-256 hex of each gateway key -> its tenant, for `ApiKeyResolver`."""
        return {h: t.tenant_id for t in self.tenants.values() for h in t.api_key_sha256}

    def policy_for(self, provider: str) -> BreakerPolicy:
        found = self.providers.get(provider)
        return found.breaker if found is not None else self.breaker


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] = os.environ
) -> Config:
    """Read and validate a TOML file (`path`, else `$RESILIENCE_CONFIG`)."""
    if path is None:
        path = environ.get("RESILIENCE_CONFIG")
        if not path:
            raise ConfigError(
                "RESILIENCE_CONFIG", "no config file given and the variable is not set"
            )
    with open(path, "rb") as file:
        try:
            data = tomllib.load(file)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(path), f"not valid TOML: {exc}") from None
    return parse_config(data, environ=environ)


def parse_config(data: Mapping[str, Any], *, environ: Mapping[str, str] = os.environ) -> Config:
    """Validate an already parsed config (for apps that build it in code)."""
    _only(data, "", {"server", "breaker", "retry", "providers", "routes", "tenants", "admin"})
    server = _server(_table(data, "server"))
    breaker = _policy(BreakerPolicy, _table(data, "breaker"), "breaker", BreakerPolicy())
    retry = _policy(RetryPolicy, _table(data, "retry"), "retry", RetryPolicy())
    providers_data = _table(data, "providers")
    if not providers_data:
        raise ConfigError("providers", "at least one provider is required")
    providers = {
        name: _provider(name, _table(providers_data, name, "providers."), breaker, environ)
        for name in providers_data
    }
    routes_data = _table(data, "routes")
    routes = {
        name: _route(
            name,
            _table(routes_data, name, "routes.").get("targets"),
            f"routes.{name}.targets",
            providers,
        )
        for name in routes_data
    }
    for name, table in routes_data.items():
        _only(table, f"routes.{name}", {"targets"})
    tenants_data = _table(data, "tenants")
    tenants = {
        tenant: _tenant(tenant, _table(tenants_data, tenant, "tenants."), providers, environ)
        for tenant in tenants_data
    }
    admin = _table(data, "admin")
    _only(admin, "admin", {"tokens"})
    tokens_data = _table(admin, "tokens", "admin.")
    tokens = {
        name: _token(name, _table(tokens_data, name, "admin.tokens."), tenants, server)
        for name in tokens_data
    }
    return Config(
        server=server,
        breaker=breaker,
        retry=retry,
        providers=providers,
        routes=routes,
        tenants=tenants,
        admin_tokens=tokens,
        database_url=async_database_url(environ.get("DATABASE_URL")),
        redis_url=environ.get("REDIS_URL") or None,
    )


def async_database_url(url: str | None) -> str | None:
    """`postgresql://` (as users have it) -> asyncpg; `sqlite:///` -> aiosqlite; others kept."""
    if not url:
        return None
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+asyncpg://" + url[len(prefix) :]
    if url.startswith("sqlite://"):
        return "sqlite+aiosqlite://" + url[len("sqlite://") :]
    return url


# -- sections ---------------------------------------------------------------------------------


def _server(table: Mapping[str, Any]) -> ServerConfig:
    _only(table, "server", {"tenant_from", "tenant_header"})
    tenant_from = _choice(table, "tenant_from", "server", ("api_key", "header"), "api_key")
    header = _string(table, "tenant_header", "server", "x-tenant-id")
    return ServerConfig(
        tenant_from=cast(Literal["api_key", "header"], tenant_from), tenant_header=header.lower()
    )


def _policy(kind: type[Any], table: Mapping[str, Any], path: str, base: Any) -> Any:
    allowed = field_names(kind)
    _only(table, path, allowed)
    values = {name: getattr(base, name) for name in allowed}
    for key, value in table.items():
        default = values[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{path}.{key}", f"expected a number, got {value!r}")
        if isinstance(default, int) and not isinstance(value, int):
            raise ConfigError(f"{path}.{key}", f"expected an integer, got {value!r}")
        values[key] = value
    try:
        return kind(**values)
    except ValueError as exc:
        raise ConfigError(
            path + "." + str(exc).split(":", 1)[0], str(exc).split(": ", 1)[1]
        ) from None


def _provider(
    name: str, table: Mapping[str, Any], breaker: BreakerPolicy, environ: Mapping[str, str]
) -> ProviderConfig:
    path = f"providers.{name}"
    if not _NAME.fullmatch(name):
        raise ConfigError(path, "provider names are 1-64 characters of A-Z a-z 0-9 . _ -")
    _only(
        table,
        path,
        {"kind", "api_key_env", "base_url", "timeout_s", "location", "embeddings", "breaker"},
    )
    kind = _choice(table, "kind", path, ("anthropic", "openai"), None)
    api_key_env = _env_reference(table.get("api_key_env"), f"{path}.api_key_env", environ)
    base_url = table.get("base_url")
    if base_url is not None and (
        not isinstance(base_url, str) or not base_url.startswith(("http://", "https://"))
    ):
        raise ConfigError(f"{path}.base_url", f"expected an http(s) URL, got {base_url!r}")
    timeout = table.get("timeout_s", 60.0)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise ConfigError(f"{path}.timeout_s", f"must be a number > 0, got {timeout!r}")
    location = _choice(table, "location", path, ("cloud", "local"), "cloud")
    embeddings = table.get("embeddings", kind == "openai")
    if not isinstance(embeddings, bool):
        raise ConfigError(f"{path}.embeddings", f"expected true or false, got {embeddings!r}")
    if embeddings and kind == "anthropic":
        raise ConfigError(f"{path}.embeddings", "anthropic providers have no embeddings API")
    overrides = _table(table, "breaker", f"{path}.")
    return ProviderConfig(
        name=name,
        kind=cast(Literal["anthropic", "openai"], kind),
        api_key_env=api_key_env,
        base_url=base_url,
        timeout_s=float(timeout),
        location=cast(Literal["cloud", "local"], location),
        embeddings=embeddings,
        breaker=_policy(BreakerPolicy, overrides, f"{path}.breaker", breaker),
    )


def _route(name: str, targets: Any, path: str, providers: Mapping[str, ProviderConfig]) -> Route:
    if not isinstance(targets, list) or not targets:
        raise ConfigError(path, 'expected a non-empty list of "provider:model" strings')
    parsed = []
    for i, text in enumerate(targets):
        if not isinstance(text, str):
            raise ConfigError(f"{path}[{i}]", f'expected "provider:model", got {text!r}')
        try:
            target = Target.parse(text)
        except ValueError:
            raise ConfigError(f"{path}[{i}]", f'expected "provider:model", got {text!r}') from None
        if target.provider not in providers:
            raise ConfigError(f"{path}[{i}]", f"unknown provider {target.provider!r}")
        parsed.append(target)
    return Route(name=name, targets=tuple(parsed))


def _tenant(
    tenant: str,
    table: Mapping[str, Any],
    providers: Mapping[str, ProviderConfig],
    environ: Mapping[str, str],
) -> TenantConfig:
    path = f"tenants.{tenant}"
    if not TENANT_ID.fullmatch(tenant):
        raise ConfigError(path, "tenant ids are 1-64 characters of A-Z a-z 0-9 . _ -")
    _only(table, path, {"api_key_sha256", "local_only", "routes", "providers"})
    hashes = table.get("api_key_sha256", [])
    if isinstance(hashes, str):
        hashes = [hashes]
    if not isinstance(hashes, list):
        raise ConfigError(f"{path}.api_key_sha256", "expected a list of SHA-256 hex digests")
    for i, digest in enumerate(hashes):
        if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
            raise ConfigError(f"{path}.api_key_sha256[{i}]", "expected 64 hex characters (SHA-256)")
    local_only = table.get("local_only", False)
    if not isinstance(local_only, bool):
        raise ConfigError(f"{path}.local_only", f"expected true or false, got {local_only!r}")
    routes = {
        name: _route(name, targets, f"{path}.routes.{name}", providers)
        for name, targets in _table(table, "routes", f"{path}.").items()
    }
    keys: dict[str, str] = {}
    for provider, settings in _table(table, "providers", f"{path}.").items():
        where = f"{path}.providers.{provider}"
        if provider not in providers:
            raise ConfigError(where, f"unknown provider {provider!r}")
        if not isinstance(settings, dict):
            raise ConfigError(where, "expected a table")
        _only(settings, where, {"api_key_env"})
        env = _env_reference(settings.get("api_key_env"), f"{where}.api_key_env", environ)
        if env is not None:
            keys[provider] = env
    return TenantConfig(
        tenant_id=tenant,
        api_key_sha256=tuple(h.lower() for h in hashes),
        local_only=local_only,
        routes=routes,
        provider_keys=keys,
    )


def _token(
    name: str, table: Mapping[str, Any], tenants: Mapping[str, TenantConfig], server: ServerConfig
) -> AdminToken:
    path = f"admin.tokens.{name}"
    _only(table, path, {"token_sha256", "tenant"})
    digest = table.get("token_sha256")
    if not isinstance(digest, str) or not _SHA256.fullmatch(digest.lower()):
        raise ConfigError(f"{path}.token_sha256", "expected 64 hex characters (SHA-256)")
    tenant = table.get("tenant")
    if tenant is not None:
        if not isinstance(tenant, str) or not TENANT_ID.fullmatch(tenant):
            raise ConfigError(f"{path}.tenant", f"not a valid tenant id: {tenant!r}")
        if server.tenant_from == "api_key" and tenant not in tenants:
            raise ConfigError(f"{path}.tenant", f"unknown tenant {tenant!r}")
    return AdminToken(name=name, token_sha256=digest.lower(), tenant=tenant)


# -- small checks -----------------------------------------------------------------------------


def _table(data: Mapping[str, Any], key: str, prefix: str = "") -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(prefix + key, f"expected a table, got {type(value).__name__}")
    return value


def _only(table: Mapping[str, Any], path: str, allowed: set[str] | frozenset[str]) -> None:
    for key in table:
        if key not in allowed:
            where = f"{path}.{key}" if path else key
            raise ConfigError(where, f"unknown key (expected one of: {', '.join(sorted(allowed))})")


def _choice(
    table: Mapping[str, Any], key: str, path: str, options: tuple[str, ...], default: str | None
) -> str:
    value = table.get(key, default)
    if value not in options:
        shown = "missing" if value is None else repr(value)
        raise ConfigError(f"{path}.{key}", f"expected one of {', '.join(options)}, got {shown}")
    return cast(str, value)


def _string(table: Mapping[str, Any], key: str, path: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{path}.{key}", f"expected a non-empty string, got {value!r}")
    return value


def _env_reference(value: Any, path: str, environ: Mapping[str, str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ConfigError(path, f"expected an environment variable name, got {value!r}")
    if not environ.get(value):
        raise ConfigError(path, f"environment variable {value} is not set")
    return value
