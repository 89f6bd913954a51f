"""`[alerts]`: breaker alerts to webhooks, parsed and checked.

    [alerts]
    dedupe_s = 60                       # optional; 0 turns dedupe off

    [alerts.webhooks.oncall]
    url_env = "SLACK_WEBHOOK_URL"       # or url = "https://..."
    format = "slack"

    [alerts.webhooks.pager]
    url = "https://hooks.example.com/resilience"
    format = "json"
    secret_env = "ALERTS_SECRET"        # required for json: the HMAC key's variable
    events = ["opened", "forced_open"]  # optional; default: opened, closed, forced_open

A Slack webhook is not signed (Slack reads no signature), so `secret_env` there is an
error rather than a setting that silently does nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from resilience.audit.alert_payloads import (
    ALL_KINDS,
    FORMATS,
    AlertKind,
    WebhookFormat,
    events_named,
)
from resilience.config.checks import (
    NAME,
    as_table,
    choice,
    env_reference,
    http_url,
    number,
    only,
    table,
)
from resilience.config.schema import AlertsConfig, ConfigError, WebhookConfig

_KEYS = frozenset({"url", "url_env", "format", "secret_env", "events"})


def parse_alerts(data: Mapping[str, Any], environ: Mapping[str, str]) -> AlertsConfig:
    """`[alerts]` (an empty table when absent)."""
    only(data, "alerts", {"webhooks", "dedupe_s"})
    dedupe_s = number(data.get("dedupe_s", 60.0), "alerts.dedupe_s", integer=False)
    if dedupe_s < 0:
        raise ConfigError("alerts.dedupe_s", f"must be a number >= 0, got {dedupe_s!r}")
    webhooks = {
        name: _webhook(name, value, environ)
        for name, value in table(data, "webhooks", "alerts.webhooks").items()
    }
    return AlertsConfig(webhooks=webhooks, dedupe_s=float(dedupe_s))


def _webhook(name: str, value: Any, environ: Mapping[str, str]) -> WebhookConfig:
    path = f"alerts.webhooks.{name}"
    if not NAME.fullmatch(name):
        raise ConfigError(path, "webhook names are 1-64 characters of A-Z a-z 0-9 . _ -")
    data = as_table(value, path)
    only(data, path, _KEYS)
    if ("url" in data) == ("url_env" in data):
        raise ConfigError(path, "set exactly one of url and url_env")
    url = http_url(data["url"], f"{path}.url") if "url" in data else None
    url_env = env_reference(data.get("url_env"), f"{path}.url_env", environ)
    if url_env is not None:
        http_url(environ[url_env], f"{path}.url_env ({url_env})")
    form = cast(WebhookFormat, choice(data, "format", path, FORMATS, "json"))
    secret_env = env_reference(data.get("secret_env"), f"{path}.secret_env", environ)
    if form == "json" and secret_env is None:
        raise ConfigError(f"{path}.secret_env", "a json webhook is signed: name its secret")
    if form == "slack" and secret_env is not None:
        raise ConfigError(f"{path}.secret_env", "slack webhooks are not signed; remove it")
    return WebhookConfig(
        name=name,
        url=url,
        url_env=url_env,
        format=form,
        secret_env=secret_env,
        events=_events(data.get("events"), f"{path}.events"),
    )


def _events(value: Any, path: str) -> frozenset[AlertKind]:
    if value is None:
        return ALL_KINDS
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ConfigError(path, "expected a non-empty list of alert names")
    try:
        return events_named(value)
    except ValueError as exc:
        raise ConfigError(path, str(exc)) from None
