"""`[alerts]`: parsed into webhooks, every mistake named by its key, secrets never shown."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from resilience.audit.alert_payloads import ALL_KINDS, AlertKind
from resilience.config.load import parse_config
from resilience.config.schema import ConfigError

ENV = {
    "KEY": "sk-upstream",
    "ALERTS_SECRET": "hmac-secret-value",
    "SLACK_URL": "https://hooks.slack.com/services/T0/B0/secret-path",
}
PROVIDERS = {"p": {"kind": "openai", "api_key_env": "KEY"}}

EXAMPLE = """
[alerts]
dedupe_s = 30

[alerts.webhooks.oncall]
url_env = "SLACK_URL"
format = "slack"

[alerts.webhooks.pager]
url = "https://hooks.example.com/resilience"
secret_env = "ALERTS_SECRET"
events = ["opened", "forced_open"]
"""


def parse(alerts: dict[str, Any]) -> Any:
    return parse_config({"providers": PROVIDERS, "alerts": alerts}, environ=ENV)


def test_the_example_parses_into_webhooks_with_their_secrets_read_from_the_environ() -> None:
    config = parse(tomllib.loads(EXAMPLE)["alerts"])
    assert config.alerts.dedupe_s == 30.0
    oncall, pager = config.alerts.webhooks["oncall"], config.alerts.webhooks["pager"]
    assert (oncall.format, oncall.url_env, oncall.events) == ("slack", "SLACK_URL", ALL_KINDS)
    assert pager.events == {AlertKind.OPENED, AlertKind.FORCED_OPEN}
    hook = pager.webhook(ENV)
    assert (hook.url, hook.secret, hook.format) == (
        "https://hooks.example.com/resilience",
        b"hmac-secret-value",
        "json",
    )
    assert oncall.webhook(ENV).url == ENV["SLACK_URL"] and oncall.webhook(ENV).secret is None
    sinks = config.alerts.sinks(ENV)
    assert [s.name for s in sinks] == ["oncall", "pager"]
    shown = repr(config) + repr(sinks) + repr(hook)
    assert not any(secret in shown for secret in ENV.values())
    assert "secret-path" not in shown


def test_no_alerts_section_means_no_webhooks() -> None:
    config = parse_config({"providers": PROVIDERS}, environ=ENV)
    assert config.alerts.webhooks == {} and config.alerts.sinks(ENV) == []


@pytest.mark.parametrize(
    ("alerts", "key", "problem"),
    [
        ({"dedupe_s": -1}, "alerts.dedupe_s", "must be a number >= 0"),
        ({"dedup_s": 1}, "alerts.dedup_s", "did you mean 'dedupe_s'?"),
        ({"webhooks": {"w": {"secret_env": "ALERTS_SECRET"}}}, "alerts.webhooks.w", "exactly one"),
        (
            {"webhooks": {"w": {"url": "https://x", "url_env": "SLACK_URL"}}},
            "alerts.webhooks.w",
            "exactly one",
        ),
        ({"webhooks": {"w": {"url": "ftp://x"}}}, "alerts.webhooks.w.url", "http://"),
        ({"webhooks": {"w": {"url": "https://x"}}}, "alerts.webhooks.w.secret_env", "signed"),
        (
            {"webhooks": {"w": {"url": "https://x", "format": "slack", "secret_env": "KEY"}}},
            "alerts.webhooks.w.secret_env",
            "not signed",
        ),
        (
            {"webhooks": {"w": {"url": "https://x", "format": "teams"}}},
            "alerts.webhooks.w.format",
            "slack, json",
        ),
        (
            {"webhooks": {"w": {"url": "https://x", "secret_env": "UNSET"}}},
            "alerts.webhooks.w.secret_env",
            "UNSET is not set",
        ),
        (
            {"webhooks": {"w": {"url_env": "KEY", "format": "slack"}}},
            "alerts.webhooks.w.url_env (KEY)",
            "http://",
        ),
        (
            {"webhooks": {"w": {"url": "https://x", "format": "slack", "events": ["open"]}}},
            "alerts.webhooks.w.events",
            "unknown alert 'open'",
        ),
        (
            {"webhooks": {"w": {"url": "https://x", "format": "slack", "events": []}}},
            "alerts.webhooks.w.events",
            "non-empty list",
        ),
        ({"webhooks": {"bad name": {}}}, "alerts.webhooks.bad name", "webhook names"),
    ],
)
def test_every_mistake_names_its_key(alerts: dict[str, Any], key: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(alerts)
    assert info.value.key == key
    assert problem in info.value.problem
    assert not any(secret in str(info.value) for secret in ENV.values())
