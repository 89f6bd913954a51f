"""The loaded configuration's shape: frozen objects, and the error every check raises.

`resilience.config` builds these from TOML and re-exports them; apps import them from
there. Nothing here holds a secret: keys are environment variable *names*, gateway keys and
admin tokens are SHA-256 digests, and the database and Redis URLs (which may carry a
password) are left out of every repr.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

from resilience.audit.alert_payloads import ALL_KINDS, AlertKind, Webhook, WebhookFormat
from resilience.audit.alerts import AlertSink
from resilience.breaker.policy import BreakerPolicy
from resilience.errors import ResilienceError
from resilience.providers.settings import ProviderSettings
from resilience.retry import RetryPolicy
from resilience.routing.bulkhead import BulkheadPolicy
from resilience.routing.routes import Route
from resilience.types import ProviderName, TenantId

TenantFrom = Literal["api_key", "header"]


class ConfigError(ResilienceError, ValueError):
    """A configuration problem. `str()` is exactly `"<key path>: <problem>"`.

        routes.chat.targets[1]: unknown provider 'opnai'

    `.key` is the path, `.problem` the rest, `.source` the file (or `"<config>"`).
    """

    def __init__(self, key: str, problem: str, *, source: str = "<config>") -> None:
        super().__init__(f"{key}: {problem}")
        self.key = key
        self.problem = problem
        self.source = source


DEFAULT_MAX_BODY_BYTES = 33_554_432
"""32 MiB: a request carrying a few base64 images fits."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """How the gateway tells tenants apart (gateway API keys, or a trusted header), and
    how it answers."""

    tenant_from: TenantFrom = "api_key"
    tenant_header: str = "x-tenant-id"
    metrics_token_sha256: str | None = None
    """SHA-256 of the bearer token `/metrics` requires; None: `/metrics` is open."""
    metrics_max_tenants: int = 1000
    """Tenants not listed in `[tenants]` that get a metrics label of their own; the rest
    share the label `_other` (in header mode callers name tenants)."""
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    """The largest request body the model endpoints read; a larger one is 413."""
    sdk_should_retry: bool = False
    """False: a failure answered after the gateway walked the route (its own retries and
    fallbacks spent) carries `x-should-retry: false`, which the OpenAI and Anthropic SDKs
    obey; true: no such header, the SDKs retry as they would."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderConfig:
    """One upstream: how to reach it (`settings`, what its adapter is built from), where
    its key is, and what the client does around it. `breaker` is `[breaker]` with this
    provider's overrides applied."""

    name: ProviderName
    settings: ProviderSettings
    """Without the key (`api_key` is None): `settings_for` adds it when the adapter is built."""
    api_key_env: str | None = None
    """The NAME of the variable holding the key; None for keyless (local) servers."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    rpm: float = 0.0
    """Requests per minute this provider (this key) accepts, over all tenants; 0: unlimited."""
    tpm: float = 0.0
    """Tokens per minute (input and output) this provider (this key) accepts, over all
    tenants; 0: unlimited."""

    def __post_init__(self) -> None:
        if self.settings.api_key is not None:
            raise ValueError("settings.api_key: a config holds no key; name it in api_key_env")

    def api_key(self, environ: Mapping[str, str]) -> str | None:
        """The key itself, read at the last moment so it is never stored on this object."""
        return (environ.get(self.api_key_env) or None) if self.api_key_env else None

    def settings_for(self, environ: Mapping[str, str]) -> ProviderSettings:
        """`settings` with the key from `environ`, for `build_provider`."""
        key = self.api_key(environ)
        return self.settings if key is None else replace(self.settings, api_key=key)


@dataclass(frozen=True, slots=True, kw_only=True)
class TenantConfig:
    """A tenant's gateway keys (digests), routing limits and overrides, and own keys."""

    tenant_id: TenantId
    api_key_sha256: tuple[str, ...] = ()
    local_only: bool = False
    routes: Mapping[str, Route] = field(default_factory=dict)
    provider_keys: Mapping[ProviderName, str] = field(default_factory=dict)
    """Provider name -> the NAME of the variable holding this tenant's own key."""
    rpm: Mapping[ProviderName, float] = field(default_factory=dict)
    """Provider name -> requests per minute this tenant may send there (absent: unlimited)."""
    tpm: Mapping[ProviderName, float] = field(default_factory=dict)
    """Provider name -> tokens per minute this tenant may use there (absent: unlimited)."""
    max_concurrent: Mapping[ProviderName, int] = field(default_factory=dict)
    """Provider name -> calls this tenant may have there at once (absent: `[bulkhead]`'s)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class WebhookConfig:
    """`[alerts.webhooks.NAME]`: a receiver of breaker alerts (`resilience.audit.alerts`).
    The URL (a Slack one is a credential) stays out of the repr; the signing secret is
    only named (`secret_env`) and read when the sink is built."""

    name: str
    url: str | None = field(default=None, repr=False)
    url_env: str | None = None
    """The NAME of a variable holding the URL, instead of `url`."""
    format: WebhookFormat = "json"
    secret_env: str | None = None
    """The NAME of the variable holding the HMAC secret (json webhooks)."""
    events: frozenset[AlertKind] = ALL_KINDS

    def webhook(self, environ: Mapping[str, str]) -> Webhook:
        """The sink's `Webhook`, with the URL and secret read from `environ` now."""
        url = self.url if self.url is not None else environ.get(self.url_env or "", "")
        secret = environ.get(self.secret_env) if self.secret_env else None
        return Webhook(
            name=self.name,
            url=url,
            format=self.format,
            secret=secret.encode() if secret else None,
            events=self.events,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AlertsConfig:
    """`[alerts]`: the webhooks, and the window within which a breaker's repeated alert
    of one kind is suppressed."""

    webhooks: Mapping[str, WebhookConfig] = field(default_factory=dict)
    dedupe_s: float = 60.0

    def sinks(self, environ: Mapping[str, str]) -> list[AlertSink]:
        """One `AlertSink` per webhook (not started), for a client's or registry's `sinks`."""
        return [
            AlertSink(webhook.webhook(environ), dedupe_s=self.dedupe_s)
            for webhook in self.webhooks.values()
        ]


@dataclass(frozen=True, slots=True, kw_only=True)
class AdminToken:
    """An admin API token (digest); `tenant` limits it to that tenant's breakers."""

    name: str
    token_sha256: str
    tenant: TenantId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """Everything `resilience.config.load_config` validated."""

    server: ServerConfig
    breaker: BreakerPolicy
    retry: RetryPolicy
    providers: Mapping[ProviderName, ProviderConfig]
    bulkhead: BulkheadPolicy | None = field(default_factory=BulkheadPolicy)
    """`[bulkhead]`: each provider's concurrency gate; None when `enabled = false`."""
    routes: Mapping[str, Route]
    tenants: Mapping[TenantId, TenantConfig]
    admin_tokens: Mapping[str, AdminToken]
    alerts: AlertsConfig = field(default_factory=AlertsConfig)
    """`[alerts]`: breaker alerts to webhooks; none by default."""
    database_url: str | None = field(default=None, repr=False)
    """`DATABASE_URL` for SQLAlchemy's async engine (`postgresql://` -> asyncpg, ...)."""
    raw_database_url: str | None = field(default=None, repr=False)
    """`DATABASE_URL` exactly as set, e.g. for psql or a sync tool."""
    redis_url: str | None = field(default=None, repr=False)
    redis_prefix: str = "resilience"
    """`REDIS_PREFIX`: the namespace of this deployment's keys in Redis."""
    source: str = "<config>"
    warnings: tuple[str, ...] = ()
    """Legal but probably unintended settings, each `"<key path>: <why>"`."""

    def tenant_by_key_hash(self) -> dict[str, TenantId]:
        """SHA-256 hex of each gateway key -> its tenant, for `ApiKeyResolver`."""
        return {h: t.tenant_id for t in self.tenants.values() for h in t.api_key_sha256}
