"""Config loading: the example loads, and every validation error names its key."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from resilience.audit.database import async_database_url
from resilience.cli.main import main as cli
from resilience.client.resilient import ResilientClient
from resilience.config.load import load_config, parse_config
from resilience.config.schema import ConfigError
from resilience.routing.routes import Target

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.toml"
ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-secret-value",
    "OPENAI_API_KEY": "sk-openai-secret-value",
    "ACME_OPENAI_KEY": "sk-acme-secret-value",
}
MINIMAL: dict[str, Any] = {
    "providers": {
        "anthropic": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        "openai": {"kind": "openai", "api_key_env": "OPENAI_API_KEY"},
    },
    "routes": {"chat": {"targets": ["anthropic:claude-x", "openai:gpt-4.1"]}},
}


def with_(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    data = copy.deepcopy(base if base is not None else MINIMAL)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def error_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV if environ is None else environ)
    return str(info.value)


def test_the_example_config_loads_with_every_section() -> None:
    config = load_config(EXAMPLE, environ=ENV)
    assert set(config.providers) == {"anthropic", "openai", "local", "local-2"}
    assert config.providers["anthropic"].breaker.cooldown_s == 60
    assert config.providers["openai"].breaker.cooldown_s == 30  # the global default
    assert config.providers["local"].location == "local"
    assert config.providers["openai"].embeddings and not config.providers["anthropic"].embeddings
    assert config.routes["chat"].targets[0] == Target("anthropic", "claude-sonnet-4-6")
    acme = config.tenants["acme"]
    assert [str(t) for t in acme.routes["chat"].targets] == [
        "openai:gpt-4.1",
        "anthropic:claude-sonnet-4-6",
    ]
    assert acme.provider_keys == {"openai": "ACME_OPENAI_KEY"}
    assert config.tenants["onprem-bank"].local_only
    assert config.admin_tokens["acme-support"].tenant == "acme"
    registry = ResilientClient.from_config(config, environ=ENV).registry
    assert registry.policy_for("anthropic").cooldown_s == 60


def test_config_path_comes_from_resilience_config() -> None:
    config = load_config(environ={**ENV, "RESILIENCE_CONFIG": str(EXAMPLE)})
    assert "chat" in config.routes
    with pytest.raises(ConfigError, match="RESILIENCE_CONFIG"):
        load_config(environ=ENV)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            with_("routes.chat.targets", ["anthropic:claude-x", "opnai:gpt-4.1"]),
            "routes.chat.targets[1]: unknown provider 'opnai'",
        ),
        (with_("routes.chat.targets", ["no-colon"]), "routes.chat.targets[0]: expected"),
        (with_("routes.chat.targets", []), "routes.chat.targets: expected a non-empty list"),
        (with_("providers.openai.kind", "opneai"), "providers.openai.kind: expected one of"),
        (with_("providers.openai.location", "edge"), "providers.openai.location: expected one of"),
        (with_("breaker.cooldown_s", -1), "breaker.cooldown_s: must be > 0, got -1"),
        (with_("retry.max_attempts", "three"), "retry.max_attempts: expected a number"),
        (with_("retry.max_attempts", 2.5), "retry.max_attempts: expected an integer"),
        (with_("breaker.failure_rate", 1.5), "breaker.failure_rate: must be in (0, 1]"),
        (with_("breaker.cooldwn_s", 5), "breaker.cooldwn_s: unknown key"),
        (
            with_("providers.openai.breaker.window_s", 0),
            "providers.openai.breaker.window_s: must be > 0",
        ),
        (
            with_("providers.openai.timeout_s", -5),
            "providers.openai.timeout_s: must be a number > 0",
        ),
        (
            with_("providers.anthropic.embeddings", True),
            "providers.anthropic.embeddings: anthropic",
        ),
        (with_("servr", {}), "servr: unknown key"),
        (
            with_("server.tenant_from", "cookie"),
            "server.tenant_from: expected one of api_key, header",
        ),
        (
            with_("tenants.acme.routes", {"chat": ["nope:m"]}),
            "tenants.acme.routes.chat[0]: unknown provider 'nope'",
        ),
        (
            with_("tenants.acme.providers", {"openia": {"api_key_env": "X"}}),
            "tenants.acme.providers.openia: unknown provider 'openia'",
        ),
        (
            with_("tenants.acme.api_key_sha256", ["abc"]),
            "tenants.acme.api_key_sha256[0]: expected 64 hex",
        ),
        (with_("tenants", {"bad id!": {}}), "tenants.bad id!: tenant ids are"),
        (
            with_("admin.tokens.ops", {"token_sha256": "a" * 64, "tenant": "ghost"}),
            "admin.tokens.ops.tenant: unknown tenant 'ghost'",
        ),
        (
            with_("admin.tokens.ops", {"token_sha256": "short"}),
            "admin.tokens.ops.token_sha256: expected 64 hex",
        ),
        ({"routes": {}}, "providers: at least one provider is required"),
    ],
)
def test_each_validation_error_names_the_key(data: dict[str, Any], message: str) -> None:
    assert message in error_of(data)


def test_a_missing_key_variable_is_named_and_its_value_never_shown() -> None:
    message = error_of(MINIMAL, environ={"ANTHROPIC_API_KEY": "sk-ant-secret-value"})
    assert message == "providers.openai.api_key_env: environment variable OPENAI_API_KEY is not set"
    tenant_key = with_("tenants.acme.providers", {"openai": {"api_key_env": "ACME_KEY"}})
    message = error_of(tenant_key)
    assert "tenants.acme.providers.openai.api_key_env" in message and "ACME_KEY" in message
    assert not any(secret in message for secret in ENV.values())


def test_a_provider_without_a_key_is_allowed_for_local_servers() -> None:
    data = with_("providers.local", {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1"})
    config = parse_config(data, environ=ENV)
    assert config.providers["local"].api_key(ENV) is None


def test_reprs_never_show_secret_values() -> None:
    config = load_config(EXAMPLE, environ={**ENV, "DATABASE_URL": "postgresql://u:pw-secret@h/db"})
    text = repr(config)
    assert not any(secret in text for secret in [*ENV.values(), "pw-secret"])
    assert "ANTHROPIC_API_KEY" in text


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        (
            "postgresql://u:p@h:5432/db?sslmode=require",
            "postgresql+asyncpg://u:p@h:5432/db?sslmode=require",
        ),
        ("postgres://h/db", "postgresql+asyncpg://h/db"),
        ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
        ("sqlite:////var/lib/audit.db", "sqlite+aiosqlite:////var/lib/audit.db"),
        ("", None),
    ],
)
def test_database_url_is_mapped_to_async_drivers(raw: str, mapped: str | None) -> None:
    assert async_database_url(raw) == mapped


def test_target_parse_splits_on_the_first_colon_only() -> None:
    assert Target.parse("local:llama3.1:8b") == Target("local", "llama3.1:8b")
    assert str(Target.parse("local:llama3.1:8b")) == "local:llama3.1:8b"
    for bad in ("nomodel:", ":noprovider", "plain"):
        with pytest.raises(ValueError, match="provider:model"):
            Target.parse(bad)


def test_check_config_command_reports_ok_or_the_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    assert cli(["check-config", str(EXAMPLE)]) == 0
    assert "ok: 4 providers, 3 routes (1 group), 2 tenants" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text('[providers.a]\nkind = "openai"\n[routes.chat]\ntargets = ["opnai:x"]\n')
    assert cli(["check-config", str(bad)]) == 1
    assert "routes.chat.targets[0]: unknown provider 'opnai'" in capsys.readouterr().err


def test_check_config_runs_as_a_command(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[breaker]\ncooldown_s = -3\n")
    done = subprocess.run(
        [sys.executable, "-m", "resilience.cli", "check-config", str(bad)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 1
    assert "breaker.cooldown_s: must be > 0, got -3" in done.stderr
