"""The TOML configuration: loaded into frozen objects, every error naming its key.

    config = load_config("gateway.toml")     # or $RESILIENCE_CONFIG
    ConfigError: routes.chat.targets[1]: unknown provider 'opnai'

Secrets are only ever named (`api_key_env = "ANTHROPIC_API_KEY"`), never written in the
file; a referenced variable that is not set is an error naming the variable, never showing
a value. `DATABASE_URL` and `REDIS_URL` come from the environment.

Decisions where the configuration's shape leaves room (docs/architecture.md, "Parts"):

- Every key has a default except `providers`: at least one is required. `routes` may be
  empty or absent, since a caller can always name `provider:model` directly.
- A route is `[routes.chat] targets = [...]` or the short `routes.chat = [...]`, both
  for global routes and for tenant overrides.
- `admin.tokens.X.tenant` must be a listed tenant when `tenant_from = "api_key"` (only
  listed tenants exist then); in header mode any valid tenant id is accepted.
- `tenant_from = "api_key"` with no tenant keys is legal (a library user may not run the
  gateway) but listed in `Config.warnings`, which `check_config` prints.
- A `local_only` tenant must be servable: a local provider must exist, and each of its
  route overrides needs a local target.
- One gateway key hash belongs to one tenant, one admin token hash to one token, and an
  admin token may not also be a gateway key.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from typing import Any, TypeVar, cast

from resilience.audit.database import async_database_url
from resilience.breaker.policy import BreakerPolicy
from resilience.config.access import check_key_hashes, parse_admin_token, parse_tenant, warnings_for
from resilience.config.alerts import parse_alerts
from resilience.config.checks import (
    HTTP_TOKEN,
    NAME,
    as_table,
    choice,
    env_reference,
    flag,
    http_url,
    number,
    only,
    parse_route,
    rpm,
    sha256_hex,
    string,
    table,
    tpm,
)
from resilience.config.schema import (
    DEFAULT_MAX_BODY_BYTES,
    AdminToken,
    Config,
    ConfigError,
    ProviderConfig,
    ServerConfig,
    TenantFrom,
)
from resilience.providers.settings import KINDS, LOCATIONS, ProviderSettings
from resilience.retry import RetryPolicy
from resilience.routing.bulkhead import BulkheadPolicy
from resilience.routing.routes import Group

_SECTIONS = frozenset(
    {
        "server",
        "breaker",
        "retry",
        "bulkhead",
        "providers",
        "routes",
        "tenants",
        "admin",
        "alerts",
    }
)
_SETTINGS_KEYS = frozenset(f.name for f in fields(ProviderSettings)) - {"api_key"}
"""`[providers.NAME]` keys that are `ProviderSettings` fields: the key is never in the file."""
_PROVIDER_KEYS = _SETTINGS_KEYS | {"api_key_env", "breaker", "rpm", "tpm"}

P = TypeVar("P", BreakerPolicy, RetryPolicy, BulkheadPolicy)


def load_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] = os.environ
) -> Config:
    """Read and validate a TOML file: `path`, else `$RESILIENCE_CONFIG`.

    Raises `ConfigError` for a bad or missing setting, `OSError` when the file cannot be read.
    """
    if path is None:
        path = environ.get("RESILIENCE_CONFIG") or None
        if path is None:
            raise ConfigError(
                "RESILIENCE_CONFIG", "no config file given and the variable is not set"
            )
    source = os.fspath(path)
    with open(source, "rb") as file:
        try:
            data = tomllib.load(file)
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(source, f"not valid TOML: {exc}", source=source) from None
    return parse_config(data, environ=environ, source=source)


def parse_config(
    data: Mapping[str, Any], *, environ: Mapping[str, str] = os.environ, source: str = "<config>"
) -> Config:
    """Validate an already parsed config: a `tomllib` result, or a dict built in code."""
    try:
        return _config(data, environ, source)
    except ConfigError as exc:
        exc.source = source
        raise


def check_config(
    path: str | os.PathLike[str] | None = None, *, environ: Mapping[str, str] = os.environ
) -> tuple[bool, str]:
    """What `resilience check-config` prints: `(True, summary and warnings)` or
    `(False, the error)`. Never raises for a bad config or an unreadable file."""
    try:
        config = load_config(path, environ=environ)
    except ConfigError as exc:
        return False, str(exc)
    except OSError as exc:
        shown = os.fspath(path) if path is not None else environ.get("RESILIENCE_CONFIG", "")
        return False, f"{shown}: cannot read the file ({exc.strerror or exc})"
    groups = sum(
        isinstance(step, Group)
        for route in [
            *config.routes.values(),
            *(r for t in config.tenants.values() for r in t.routes.values()),
        ]
        for step in route.targets
    )
    counts = [
        _count(len(config.providers), "provider"),
        _count(len(config.routes), "route") + (f" ({_count(groups, 'group')})" if groups else ""),
        _count(len(config.tenants), "tenant"),
        _count(len(config.admin_tokens), "admin token"),
    ]
    lines = [f"ok: {', '.join(counts)}", *(f"warning: {w}" for w in config.warnings)]
    return True, "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


# -- sections ---------------------------------------------------------------------------------


def _config(data: Mapping[str, Any], environ: Mapping[str, str], source: str) -> Config:
    only(data, "", _SECTIONS)
    server = _server(table(data, "server", "server"))
    breaker = _policy(BreakerPolicy, table(data, "breaker", "breaker"), "breaker", None)
    retry = _policy(RetryPolicy, table(data, "retry", "retry"), "retry", None)
    bulkhead = _bulkhead(table(data, "bulkhead", "bulkhead"))
    providers_data = table(data, "providers", "providers")
    if not providers_data:
        raise ConfigError("providers", "at least one provider is required ([providers.NAME])")
    providers = {
        name: _provider(name, value, breaker, environ) for name, value in providers_data.items()
    }
    routes = {
        name: parse_route(name, value, f"routes.{name}", providers)
        for name, value in table(data, "routes", "routes").items()
    }
    tenants = {
        tenant: parse_tenant(tenant, value, providers, environ)
        for tenant, value in table(data, "tenants", "tenants").items()
    }
    check_key_hashes(tenants)
    admin = table(data, "admin", "admin")
    only(admin, "admin", {"tokens"})
    tokens: dict[str, AdminToken] = {}
    for name, value in table(admin, "tokens", "admin.tokens").items():
        tokens[name] = parse_admin_token(name, value, tenants, server, tokens)
    raw_database_url = environ.get("DATABASE_URL") or None
    return Config(
        server=server,
        breaker=breaker,
        retry=retry,
        bulkhead=bulkhead,
        providers=providers,
        routes=routes,
        tenants=tenants,
        admin_tokens=tokens,
        alerts=parse_alerts(table(data, "alerts", "alerts"), environ),
        database_url=async_database_url(raw_database_url),
        raw_database_url=raw_database_url,
        redis_url=environ.get("REDIS_URL") or None,
        redis_prefix=_redis_prefix(environ.get("REDIS_PREFIX") or "resilience"),
        source=source,
        warnings=warnings_for(server, tenants),
    )


def _redis_prefix(prefix: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.:{}-]{1,100}", prefix):
        raise ConfigError(
            "REDIS_PREFIX", f"expected 1 to 100 letters, digits or _.:{{}}-, got {prefix!r}"
        )
    return prefix


def _server(data: Mapping[str, Any]) -> ServerConfig:
    keys = {
        "tenant_from",
        "tenant_header",
        "metrics_token_sha256",
        "metrics_max_tenants",
        "max_body_bytes",
        "sdk_should_retry",
    }
    only(data, "server", keys)
    tenant_from = choice(data, "tenant_from", "server", ("api_key", "header"), "api_key")
    header = string(data.get("tenant_header", "x-tenant-id"), "server.tenant_header")
    if not HTTP_TOKEN.fullmatch(header):
        raise ConfigError("server.tenant_header", f"not a valid HTTP header name: {header!r}")
    token = data.get("metrics_token_sha256")
    if token is not None:
        token = sha256_hex(token, "server.metrics_token_sha256")
    path = "server.metrics_max_tenants"
    max_tenants = number(data.get("metrics_max_tenants", 1000), path, integer=True)
    if max_tenants < 0:
        raise ConfigError(path, f"must be an integer >= 0, got {max_tenants!r}")
    path = "server.max_body_bytes"
    max_body = number(data.get("max_body_bytes", DEFAULT_MAX_BODY_BYTES), path, integer=True)
    if max_body < 1024:
        raise ConfigError(path, f"must be an integer >= 1024, got {max_body!r}")
    return ServerConfig(
        tenant_from=cast(TenantFrom, tenant_from),
        tenant_header=header.lower(),
        metrics_token_sha256=token,
        metrics_max_tenants=int(max_tenants),
        max_body_bytes=int(max_body),
        sdk_should_retry=flag(data.get("sdk_should_retry", False), "server.sdk_should_retry"),
    )


def _policy(kind: type[P], data: Mapping[str, Any], path: str, base: P | None) -> P:
    """`kind` built from `base` (else its defaults) with `data`'s keys replaced."""
    specs = {f.name: f for f in fields(kind)}
    integers = {name for name, spec in specs.items() if spec.type in ("int", int, "int | None")}
    only(data, path, specs)
    values = {name: getattr(base, name) for name in specs} if base is not None else {}
    for key, value in data.items():
        values[key] = number(value, f"{path}.{key}", integer=key in integers)
    try:
        policy = kind(**values)  # the values as written, so errors show them as written
    except ValueError as exc:  # the policy names the field: "cooldown_s: must be > 0, got -1"
        name, _, problem = str(exc).partition(": ")
        if name not in specs:
            raise ConfigError(path, str(exc)) from None
        if name not in data:  # the clash is with a value this table did not set
            problem += " (inherited from [breaker])" if base is not None else " (the default)"
        raise ConfigError(f"{path}.{name}", problem) from None
    floats: dict[str, Any] = {k: float(v) for k, v in values.items() if k not in integers}
    return replace(policy, **floats)


def _bulkhead(data: Mapping[str, Any]) -> BulkheadPolicy | None:
    """`[bulkhead]`: `enabled` (default true) and `BulkheadPolicy`'s fields."""
    if not flag(data.get("enabled", True), "bulkhead.enabled"):
        return None
    settings = {key: value for key, value in data.items() if key != "enabled"}
    return _policy(BulkheadPolicy, settings, "bulkhead", None)


def _provider(
    name: str, value: Any, breaker: BreakerPolicy, environ: Mapping[str, str]
) -> ProviderConfig:
    path = f"providers.{name}"
    if not NAME.fullmatch(name):
        raise ConfigError(path, "provider names are 1-64 characters of A-Z a-z 0-9 . _ -")
    data = as_table(value, path)
    only(data, path, _PROVIDER_KEYS)
    overrides = table(data, "breaker", f"{path}.breaker")
    return ProviderConfig(
        name=name,
        settings=_settings(data, path),
        api_key_env=env_reference(data.get("api_key_env"), f"{path}.api_key_env", environ),
        breaker=_policy(BreakerPolicy, overrides, f"{path}.breaker", breaker),
        rpm=rpm(data.get("rpm", 0), f"{path}.rpm"),
        tpm=tpm(data.get("tpm", 0), f"{path}.tpm"),
    )


def _settings(data: Mapping[str, Any], path: str) -> ProviderSettings:
    """The TOML types are checked here; the values by `ProviderSettings`, whose errors name
    the field, which is the key. An absent key keeps the settings' default."""
    values: dict[str, Any] = {"kind": choice(data, "kind", path, KINDS, None)}
    if "base_url" in data:
        values["base_url"] = http_url(data["base_url"], f"{path}.base_url")
    if "timeout_s" in data:
        values["timeout_s"] = number(data["timeout_s"], f"{path}.timeout_s", integer=False)
    if "location" in data:
        values["location"] = choice(data, "location", path, LOCATIONS, None)
    if "embeddings" in data:
        values["embeddings"] = flag(data["embeddings"], f"{path}.embeddings")
    if "max_response_bytes" in data:
        raw = data["max_response_bytes"]
        values["max_response_bytes"] = number(raw, f"{path}.max_response_bytes", integer=True)
    try:
        return ProviderSettings(**values)
    except ValueError as exc:  # "timeout_s: must be a number > 0, got -5"
        key, _, problem = str(exc).partition(": ")
        raise ConfigError(f"{path}.{key}", problem) from None
