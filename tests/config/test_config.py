"""Config loading: the example loads, every validation error names its key, secrets stay out."""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path
from typing import Any

import pytest

from resilience.audit.database import async_database_url
from resilience.breaker.policy import BreakerPolicy
from resilience.client.resilient import ResilientClient
from resilience.config.load import check_config, load_config, parse_config
from resilience.config.schema import ConfigError, ProviderConfig
from resilience.errors import InvalidRequestError, ResilienceError, UnknownRouteError
from resilience.retry import RetryPolicy
from resilience.routing.routes import Group, Route, Strategy, Target

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gateway.toml"
ENV = {
    "ANTHROPIC_API_KEY": "sk-ant-secret-value",
    "OPENAI_API_KEY": "sk-openai-secret-value",
    "ACME_OPENAI_KEY": "sk-acme-secret-value",
}
SECRETS = [*ENV.values()]
HASH_A, HASH_B = "a" * 64, "b" * 64
GROUP: dict[str, Any] = {"group": ["openai:gpt-4.1", "local:llama"]}
MINIMAL: dict[str, Any] = {
    "providers": {
        "anthropic": {"kind": "anthropic", "api_key_env": "ANTHROPIC_API_KEY"},
        "openai": {"kind": "openai", "api_key_env": "OPENAI_API_KEY"},
        "local": {"kind": "openai", "base_url": "http://127.0.0.1:8000/v1", "location": "local"},
    },
    "routes": {"chat": {"targets": ["anthropic:claude-x", "openai:gpt-4.1"]}},
    "tenants": {"acme": {"api_key_sha256": [HASH_A]}},
}


def with_(path: str, value: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
    """MINIMAL (or `base`) with the dotted `path` set to `value`."""
    data = copy.deepcopy(MINIMAL if base is None else base)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value
    return data


def without(path: str) -> dict[str, Any]:
    data = copy.deepcopy(MINIMAL)
    *parents, last = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    del node[last]
    return data


def error_of(data: dict[str, Any], environ: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ=ENV if environ is None else environ)
    return info.value


# -- the example ------------------------------------------------------------------------------


def test_the_example_loads_with_every_section() -> None:
    config = load_config(EXAMPLE, environ=ENV)
    assert config.server.tenant_from == "api_key"
    assert config.server.tenant_header == "x-tenant-id"
    assert config.breaker == BreakerPolicy()  # the example spells out the defaults
    assert config.retry == RetryPolicy()
    assert set(config.providers) == {"anthropic", "openai", "local", "local-2"}
    local = config.providers["local"]
    settings = local.settings
    assert (settings.kind, settings.location, local.api_key_env, settings.timeout_s) == (
        "openai",
        "local",
        None,
        120.0,
    )
    assert config.providers["openai"].settings.can_embed
    assert not config.providers["anthropic"].settings.can_embed
    assert [str(t) for t in config.routes["chat"].targets] == [
        "anthropic:claude-sonnet-4-6",
        "openai:gpt-4.1",
        "local:llama3.1:8b",
    ]
    acme, bank = config.tenants["acme"], config.tenants["onprem-bank"]
    assert acme.provider_keys == {"openai": "ACME_OPENAI_KEY"}
    assert acme.routes["chat"] == Route.of("chat", "openai:gpt-4.1", "anthropic:claude-sonnet-4-6")
    assert bank.local_only and bank.routes["chat"].targets[0] == Target("local", "llama3.1:70b")
    assert config.admin_tokens["acme-support"].tenant == "acme"
    assert config.admin_tokens["ops"].tenant is None
    assert config.warnings == ()
    assert config.source == str(EXAMPLE)


def test_the_example_merges_provider_breaker_overrides_over_the_global_section() -> None:
    config = load_config(EXAMPLE, environ=ENV)
    policy_for = ResilientClient.from_config(config, environ=ENV).registry.policy_for
    anthropic = policy_for("anthropic")
    assert (anthropic.cooldown_s, anthropic.max_cooldown_s) == (60.0, 900.0)
    assert anthropic.failure_threshold == config.breaker.failure_threshold
    local = policy_for("local")
    assert (local.failure_threshold, local.window_s, local.cooldown_s) == (3, 30.0, 30.0)
    assert policy_for("openai") == config.breaker


def test_the_example_key_digests_belong_to_the_keys_its_comments_name() -> None:
    config = load_config(EXAMPLE, environ=ENV)
    from resilience.tenancy.resolvers import hash_key

    assert config.tenant_by_key_hash() == {
        hash_key("acme-example-key"): "acme",
        hash_key("onprem-bank-example-key"): "onprem-bank",
    }
    assert config.admin_tokens["ops"].token_sha256 == hash_key("ops-example-token")


# -- where the file comes from ----------------------------------------------------------------


def test_the_path_defaults_to_resilience_config_and_one_of_them_is_required() -> None:
    config = load_config(environ={**ENV, "RESILIENCE_CONFIG": str(EXAMPLE)})
    assert config.source == str(EXAMPLE)
    with pytest.raises(ConfigError) as info:
        load_config(environ=ENV)
    assert info.value.key == "RESILIENCE_CONFIG"


def test_invalid_toml_is_a_config_error_naming_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[breaker\ncooldown_s = 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(bad, environ=ENV)
    assert info.value.key == str(bad) and "not valid TOML" in str(info.value)


def test_a_config_error_is_a_value_error_whose_message_is_key_colon_problem(
    tmp_path: Path,
) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text('[providers.a]\nkind = "openai"\n[routes.chat]\ntargets = ["opnai:x"]\n')
    with pytest.raises(ConfigError) as info:
        load_config(path, environ={})
    error = info.value
    assert isinstance(error, ValueError) and isinstance(error, ResilienceError)
    assert str(error) == "routes.chat.targets[0]: unknown provider 'opnai'"
    assert (error.key, error.problem, error.source) == (
        "routes.chat.targets[0]",
        "unknown provider 'opnai'",
        str(path),
    )
    assert error_of(with_("servr", {})).source == "<config>"


# -- every validation error names its key -----------------------------------------------------

CASES: list[tuple[dict[str, Any], str]] = [
    # unknown keys, anywhere, with a hint
    (with_("servr", {}), "servr: unknown key (did you mean 'server'?)"),
    (with_("breaker.cooldwn_s", 5), "breaker.cooldwn_s: unknown key (did you mean 'cooldown_s'?)"),
    (
        with_("providers.openai.breaker.windw_s", 5),
        "providers.openai.breaker.windw_s: unknown key (did you mean 'window_s'?)",
    ),
    (
        with_("tenants.acme.providers.openai", {"api_key": "X"}),
        "tenants.acme.providers.openai.api_key: unknown key (did you mean 'api_key_env'?)",
    ),
    (
        with_("routes.chat.target", ["openai:x"]),
        "routes.chat.target: unknown key (did you mean 'targets'?)",
    ),
    (
        with_("admin.tokens.ops", {"token_sha256": HASH_B, "tenat": "acme"}),
        "admin.tokens.ops.tenat: unknown key (did you mean 'tenant'?)",
    ),
    (
        with_("server.zzz", 1),
        "server.zzz: unknown key (expected one of: max_body_bytes, metrics_max_tenants, "
        "metrics_token_sha256, sdk_should_retry, tenant_from, tenant_header)",
    ),
    # types and numbers
    (
        with_("retry.max_attempts", "three"),
        "retry.max_attempts: expected a number (integer), got 'three'",
    ),
    (with_("retry.max_attempts", 2.5), "retry.max_attempts: expected an integer, got 2.5"),
    (
        with_("retry.max_attempts", True),
        "retry.max_attempts: expected a number (integer), got true",
    ),
    (with_("breaker.window_s", "60s"), "breaker.window_s: expected a number, got '60s'"),
    (
        with_("breaker.window_s", float("inf")),
        "breaker.window_s: expected a finite number, got inf",
    ),
    (with_("breaker.cooldown_s", -1), "breaker.cooldown_s: must be > 0, got -1"),
    (with_("breaker.cooldown_s", 0), "breaker.cooldown_s: must be > 0, got 0"),
    (with_("retry.deadline_s", 0), "retry.deadline_s: must be > 0, got 0"),
    (with_("breaker.failure_rate", 1.5), "breaker.failure_rate: must be in (0, 1], got 1.5"),
    (
        with_("breaker.cooldown_s", 900),
        "breaker.max_cooldown_s: must be >= cooldown_s (900), got 600.0 (the default)",
    ),
    (
        with_("providers.openai.breaker.cooldown_s", 900),
        "providers.openai.breaker.max_cooldown_s: must be >= cooldown_s (900), got 600.0 "
        "(inherited from [breaker])",
    ),
    (with_("breaker", [1]), "breaker: expected a table, got a list"),
    # providers
    ({"routes": {}}, "providers: at least one provider is required ([providers.NAME])"),
    (with_("providers", "openai"), "providers: expected a table, got 'openai'"),
    (
        with_("providers.openai.kind", "opneai"),
        "providers.openai.kind: expected one of anthropic, openai, got 'opneai'",
    ),
    (
        without("providers.openai.kind"),
        "providers.openai.kind: expected one of anthropic, openai, got nothing (the key is "
        "required)",
    ),
    (
        with_("providers.openai.location", "edge"),
        "providers.openai.location: expected one of cloud, local, got 'edge'",
    ),
    (
        with_("providers.openai.timeout_s", -5),
        "providers.openai.timeout_s: must be a number > 0, got -5",
    ),
    (
        with_("providers.openai.timeout_s", 0),
        "providers.openai.timeout_s: must be a number > 0, got 0",
    ),
    (
        with_("providers.anthropic.embeddings", True),
        "providers.anthropic.embeddings: anthropic providers have no embeddings API; "
        "use kind = openai",
    ),
    (
        with_("providers.openai.embeddings", "yes"),
        "providers.openai.embeddings: expected true or false, got 'yes'",
    ),
    (
        with_("providers.openai.base_url", "ftp://h"),
        "providers.openai.base_url: expected an http:// or https:// URL",
    ),
    (  # the prefix passes the loader; `ProviderSettings` finds no host and names its field
        with_("providers.openai.base_url", "http://"),
        "providers.openai.base_url: expected an http:// or https:// URL",
    ),
    (
        with_("providers.open ai", {"kind": "openai"}),
        "providers.open ai: provider names are 1-64 characters of A-Z a-z 0-9 . _ -",
    ),
    # routes
    (
        with_("routes.chat.targets", ["anthropic:claude-x", "opnai:gpt-4.1"]),
        "routes.chat.targets[1]: unknown provider 'opnai'",
    ),
    (
        with_("routes.chat.targets", ["no-colon"]),
        'routes.chat.targets[0]: expected "provider:model" or a group table '
        "{ group = [...] }, got 'no-colon'",
    ),
    (
        with_("routes.chat.targets", [42]),
        'routes.chat.targets[0]: expected "provider:model" or a group table '
        "{ group = [...] }, got 42",
    ),
    (
        with_("routes.chat.targets", []),
        'routes.chat.targets: expected a non-empty list of "provider:model" strings, '
        "got an empty list",
    ),
    (
        with_("routes.chat", {}),
        'routes.chat.targets: expected a non-empty list of "provider:model" strings, got nothing',
    ),
    (with_("routes.chat", ["opnai:x"]), "routes.chat[0]: unknown provider 'opnai'"),
    (
        with_("routes.chat.targets", ["openai:gpt-4.1", "openai:gpt-4.1"]),
        "routes.chat.targets[1]: 'openai:gpt-4.1' is already at [0]",
    ),
    # tenants
    (
        with_("tenants.acme.routes", {"chat": ["nope:m"]}),
        "tenants.acme.routes.chat[0]: unknown provider 'nope'",
    ),
    (
        with_("tenants.acme.routes", {"chat": {"targets": ["openai:m", "nope:m"]}}),
        "tenants.acme.routes.chat.targets[1]: unknown provider 'nope'",
    ),
    (
        with_("tenants.acme.providers", {"openia": {"api_key_env": "ACME_OPENAI_KEY"}}),
        "tenants.acme.providers.openia: unknown provider 'openia'",
    ),
    (
        with_("tenants.acme.providers", {"openai": "ACME_OPENAI_KEY"}),
        "tenants.acme.providers.openai: expected a table, got 'ACME_OPENAI_KEY'",
    ),
    (
        with_("tenants.acme.api_key_sha256", [HASH_A, "abc"]),
        "tenants.acme.api_key_sha256[1]: expected 64 hex characters (a SHA-256 digest)",
    ),
    (
        with_("tenants.acme.api_key_sha256", ["g" * 64]),
        "tenants.acme.api_key_sha256[0]: expected 64 hex characters (a SHA-256 digest)",
    ),
    (
        with_("tenants.acme.api_key_sha256", 7),
        "tenants.acme.api_key_sha256: expected a list of SHA-256 hex digests",
    ),
    (
        with_("tenants.bad id!", {}),
        "tenants.bad id!: tenant ids are 1-64 characters of A-Z a-z 0-9 . _ -, starting with "
        "A-Z a-z 0-9",
    ),
    (
        with_("tenants.acme.local_only", "yes"),
        "tenants.acme.local_only: expected true or false, got 'yes'",
    ),
    (
        with_("tenants.bank", {"local_only": True, "routes": {"chat": ["openai:gpt-4.1"]}}),
        "tenants.bank.routes.chat: the tenant is local_only but no target is local",
    ),
    (
        with_("tenants.bank", {"api_key_sha256": [HASH_A]}),
        "tenants.bank.api_key_sha256[0]: also tenant 'acme''s",
    ),
    (
        with_("tenants.acme.api_key_sha256", [HASH_A, HASH_A.upper()]),
        "tenants.acme.api_key_sha256[1]: listed twice",
    ),
    # admin tokens
    (
        with_("admin.tokens.ops", {"token_sha256": HASH_B, "tenant": "ghost"}),
        "admin.tokens.ops.tenant: unknown tenant 'ghost'",
    ),
    (
        with_("admin.tokens.ops", {"token_sha256": HASH_B, "tenant": "no way"}),
        "admin.tokens.ops.tenant: not a valid tenant id: 'no way'",
    ),
    (
        with_("admin.tokens.ops", {"token_sha256": "short"}),
        "admin.tokens.ops.token_sha256: expected 64 hex characters (a SHA-256 digest)",
    ),
    (
        with_("admin.tokens.ops", {"tenant": "acme"}),
        "admin.tokens.ops.token_sha256: missing; the SHA-256 hex digest of the token",
    ),
    (
        with_("admin.tokens.ops", {"token_sha256": HASH_A}),
        "admin.tokens.ops.token_sha256: same secret as a gateway key of tenant 'acme'; "
        "use distinct ones",
    ),
    (
        with_("admin.tokens", {"ops": {"token_sha256": HASH_B}, "ops2": {"token_sha256": HASH_B}}),
        "admin.tokens.ops2.token_sha256: same token as admin.tokens.ops",
    ),
    (with_("admin.users", {}), "admin.users: unknown key (expected one of: tokens)"),
    # groups and request rates
    (
        with_("routes.chat.targets", [{"group": [], "strategy": "round_robin"}]),
        "routes.chat.targets[0].group: expected a non-empty list of "
        '"provider:model", got an empty list',
    ),
    (
        with_("routes.chat.targets", [{"group": ["openai:gpt-4.1"], "stratgy": "hash"}]),
        "routes.chat.targets[0].stratgy: unknown key (did you mean 'strategy'?)",
    ),
    (
        with_("routes.chat.targets", [{"group": ["openai:gpt-4.1"], "strategy": "fastest"}]),
        "routes.chat.targets[0].strategy: expected one of priority, round_robin, weighted, "
        "least_latency, least_busy, hash, got 'fastest'",
    ),
    (
        with_("routes.chat.targets", [{"group": ["openai:gpt-4.1", "opnai:x"]}]),
        "routes.chat.targets[0].group[1]: unknown provider 'opnai'",
    ),
    (
        with_("routes.chat.targets", [GROUP | {"strategy": "weighted"}]),
        "routes.chat.targets[0].weights: strategy weighted needs one weight per member",
    ),
    (
        with_("routes.chat.targets", [GROUP | {"strategy": "weighted", "weights": [1]}]),
        "routes.chat.targets[0].weights: expected 2 numbers (one per member), got a list",
    ),
    (
        with_("routes.chat.targets", [GROUP | {"strategy": "weighted", "weights": [1, 0]}]),
        "routes.chat.targets[0].weights[1]: must be a number > 0, got 0",
    ),
    (
        with_("routes.chat.targets", [GROUP | {"weights": [1, 2]}]),
        "routes.chat.targets[0].weights: only for strategy weighted, not priority",
    ),
    (
        with_("routes.chat.targets", [GROUP, "openai:gpt-4.1"]),
        "routes.chat.targets[1]: 'openai:gpt-4.1' is already at [0].group[0]",
    ),
    (
        with_("routes.chat.targets", [GROUP, {"group": ["local:llama"]}]),
        "routes.chat.targets[1].group[0]: 'local:llama' is already at [0].group[1]",
    ),
    (
        with_("providers.openai.rpm", -1),
        "providers.openai.rpm: must be a number >= 0 (0: unlimited), got -1",
    ),
    (with_("providers.openai.rpm", "60"), "providers.openai.rpm: expected a number, got '60'"),
    (
        with_("providers.openai.max_response_bytes", 100),
        "providers.openai.max_response_bytes: must be an integer >= 1024, got 100",
    ),
    (
        with_("providers.openai.max_response_bytes", 1.5e6),
        "providers.openai.max_response_bytes: expected an integer, got 1500000.0",
    ),
    (
        with_("tenants.acme.providers.openai", {"rpm": True}),
        "tenants.acme.providers.openai.rpm: expected a number, got true",
    ),
    # server
    (
        with_("server.tenant_from", "cookie"),
        "server.tenant_from: expected one of api_key, header, got 'cookie'",
    ),
    (
        with_("server.tenant_header", "x tenant"),
        "server.tenant_header: not a valid HTTP header name: 'x tenant'",
    ),
]


@pytest.mark.parametrize(("data", "message"), CASES, ids=[m.split(":")[0] for _, m in CASES])
def test_each_validation_error_is_exactly_key_path_colon_problem(
    data: dict[str, Any], message: str
) -> None:
    error = error_of(data)
    assert str(error) == message
    assert message.startswith(error.key + ": ")


def test_a_local_only_tenant_needs_some_local_provider() -> None:
    data = without("providers.local")
    data["tenants"]["bank"] = {"local_only": True}
    assert str(error_of(data)) == (
        'tenants.bank.local_only: no provider has location = "local", '
        "so this tenant could never be served"
    )


# -- environment references -------------------------------------------------------------------


def test_a_missing_key_variable_is_named_and_no_value_is_ever_shown() -> None:
    environ = {"ANTHROPIC_API_KEY": "sk-ant-secret-value"}
    message = str(error_of(MINIMAL, environ=environ))
    assert message == "providers.openai.api_key_env: environment variable OPENAI_API_KEY is not set"
    assert "sk-ant-secret-value" not in message


def test_an_empty_key_variable_is_an_error_too() -> None:
    message = str(error_of(MINIMAL, environ={**ENV, "OPENAI_API_KEY": ""}))
    assert message == "providers.openai.api_key_env: environment variable OPENAI_API_KEY is empty"


def test_a_tenant_key_variable_is_checked_like_a_provider_one() -> None:
    data = with_("tenants.acme.providers", {"openai": {"api_key_env": "ACME_KEY"}})
    message = str(error_of(data))
    assert message == (
        "tenants.acme.providers.openai.api_key_env: environment variable ACME_KEY is not set"
    )
    assert not any(secret in message for secret in SECRETS)


def test_a_key_pasted_where_a_variable_name_belongs_is_not_echoed() -> None:
    data = with_("providers.openai.api_key_env", "sk-proj-PASTED-SECRET")
    message = str(error_of(data))
    assert message.startswith("providers.openai.api_key_env: expected the name of an environment")
    assert "PASTED-SECRET" not in message


def test_a_provider_without_a_key_variable_is_allowed_for_local_servers() -> None:
    config = parse_config(MINIMAL, environ=ENV)
    assert config.providers["local"].api_key_env is None
    assert config.providers["local"].api_key(ENV) is None


def test_a_provider_key_is_read_from_the_environ_passed_at_call_time() -> None:
    provider = parse_config(MINIMAL, environ=ENV).providers["openai"]
    assert provider.api_key(ENV) == "sk-openai-secret-value"
    assert provider.api_key({"OPENAI_API_KEY": "rotated"}) == "rotated"
    assert provider.api_key({}) is None


# -- defaults, merging, normalisation ---------------------------------------------------------


def test_every_section_but_providers_has_defaults() -> None:
    config = parse_config({"providers": {"p": {"kind": "openai"}}}, environ={})
    assert config.breaker == BreakerPolicy() and config.retry == RetryPolicy()
    assert (config.server.tenant_from, config.server.tenant_header) == ("api_key", "x-tenant-id")
    assert config.routes == {} and config.tenants == {} and config.admin_tokens == {}
    assert (config.database_url, config.redis_url) == (None, None)


def test_embeddings_default_by_kind() -> None:
    providers = parse_config(MINIMAL, environ=ENV).providers
    assert providers["openai"].settings.can_embed and providers["local"].settings.can_embed
    assert not providers["anthropic"].settings.can_embed
    data = with_("providers.local.embeddings", False)
    assert not parse_config(data, environ=ENV).providers["local"].settings.can_embed


def test_breaker_overrides_apply_to_their_provider_only_and_inherit_the_rest() -> None:
    data = with_("breaker", {"failure_threshold": 8, "cooldown_s": 20})
    data = with_("providers.openai.breaker", {"cooldown_s": 45}, base=data)
    config = parse_config(data, environ=ENV)
    policy_for = ResilientClient.from_config(config, environ=ENV).registry.policy_for
    assert policy_for("openai").cooldown_s == 45.0
    assert policy_for("openai").failure_threshold == 8  # from [breaker]
    assert policy_for("anthropic") == config.breaker
    assert config.breaker.cooldown_s == 20.0
    assert policy_for("unconfigured") == config.breaker


def test_whole_numbers_for_float_settings_are_stored_as_floats() -> None:
    config = parse_config(with_("breaker.window_s", 60), environ=ENV)
    assert type(config.breaker.window_s) is float
    assert type(config.breaker.failure_threshold) is int


def test_key_digests_are_stored_lowercase_and_one_string_is_a_list_of_one() -> None:
    config = parse_config(with_("tenants.acme.api_key_sha256", HASH_A.upper()), environ=ENV)
    assert config.tenants["acme"].api_key_sha256 == (HASH_A,)
    assert config.tenant_by_key_hash() == {HASH_A: "acme"}


def test_a_route_may_be_written_as_a_bare_list_and_routes_may_be_empty() -> None:
    config = parse_config(with_("routes", {"chat": ["openai:gpt-4.1"]}), environ=ENV)
    assert config.routes["chat"] == Route.of("chat", "openai:gpt-4.1")
    assert parse_config(with_("routes", {}), environ=ENV).routes == {}


def test_the_tenant_header_is_stored_lowercase() -> None:
    config = parse_config(with_("server.tenant_header", "X-Org-ID"), environ=ENV)
    assert config.server.tenant_header == "x-org-id"


def test_in_header_mode_an_admin_token_may_name_an_unlisted_tenant() -> None:
    data = with_("server.tenant_from", "header")
    data = with_("admin.tokens.ops", {"token_sha256": HASH_B, "tenant": "globex"}, base=data)
    assert parse_config(data, environ=ENV).admin_tokens["ops"].tenant == "globex"


def test_a_loaded_config_is_frozen() -> None:
    config = parse_config(MINIMAL, environ=ENV)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.routes = {}  # type: ignore[misc]


# -- warnings ---------------------------------------------------------------------------------


def test_api_key_mode_without_any_tenant_key_loads_with_a_warning() -> None:
    config = parse_config(with_("tenants", {"acme": {}}), environ=ENV)
    assert config.warnings == (
        'server.tenant_from: "api_key" but no tenant has api_key_sha256, so the gateway '
        "answers 401 to every request",
    )


def test_header_mode_warns_that_tenant_keys_are_ignored() -> None:
    config = parse_config(with_("server.tenant_from", "header"), environ=ENV)
    assert config.warnings == (
        'tenants.acme.api_key_sha256: ignored, server.tenant_from is "header"',
    )


# -- routes of a loaded config, as the client resolves them ---------------------------------


def test_route_for_prefers_the_tenant_override_then_the_global_route() -> None:
    config = load_config(EXAMPLE, environ=ENV)
    client = ResilientClient.from_config(config, environ=ENV)
    assert client.route_for("acme", "chat") == config.tenants["acme"].routes["chat"]
    assert client.route_for("globex", "chat") == config.routes["chat"]  # not listed: global
    assert client.route_for("acme", "embed") == config.routes["embed"]  # no override for it
    assert config.tenants["acme"].routes["chat"] != config.routes["chat"]


def test_route_for_takes_provider_colon_model_of_a_known_provider_directly() -> None:
    client = ResilientClient.from_config(load_config(EXAMPLE, environ=ENV), environ=ENV)
    assert client.route_for("acme", "local:qwen2.5:32b") == Route.of(
        "local:qwen2.5:32b", Target("local", "qwen2.5:32b")
    )


@pytest.mark.parametrize("name", ["nope", "opnai:gpt-4.1"])
def test_route_for_anything_else_is_an_unknown_route_naming_it(name: str) -> None:
    client = ResilientClient.from_config(load_config(EXAMPLE, environ=ENV), environ=ENV)
    with pytest.raises(UnknownRouteError) as info:
        client.route_for("acme", name)
    assert isinstance(info.value, LookupError)
    assert f"unknown route {name!r}" in str(info.value)
    assert "anthropic, local, local-2, openai" in str(info.value)
    assert info.value.tenant == "acme"


@pytest.mark.parametrize("name", [":gpt", "openai:", ""])
def test_route_for_a_name_no_provider_could_have_is_an_invalid_model(name: str) -> None:
    client = ResilientClient.from_config(load_config(EXAMPLE, environ=ENV), environ=ENV)
    with pytest.raises(InvalidRequestError) as info:
        client.route_for("acme", name)
    assert info.value.field == "model"
    assert info.value.tenant == "acme"


# -- database URL -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "mapped"),
    [
        (
            "postgresql://u:p@h:5432/db?sslmode=require&application_name=gw",
            "postgresql+asyncpg://u:p@h:5432/db?sslmode=require&application_name=gw",
        ),
        ("postgres://h/db", "postgresql+asyncpg://h/db"),
        ("PostgreSQL://h/db", "postgresql+asyncpg://h/db"),
        ("postgresql+asyncpg://h/db", "postgresql+asyncpg://h/db"),
        ("postgresql+psycopg://h/db", "postgresql+psycopg://h/db"),
        ("sqlite:////var/lib/audit.db", "sqlite+aiosqlite:////var/lib/audit.db"),
        ("sqlite:///relative.db", "sqlite+aiosqlite:///relative.db"),
        ("sqlite+aiosqlite:///a.db", "sqlite+aiosqlite:///a.db"),
        ("", None),
        (None, None),
    ],
)
def test_database_url_is_mapped_to_async_drivers(raw: str | None, mapped: str | None) -> None:
    assert async_database_url(raw) == mapped


def test_config_exposes_the_mapped_and_the_raw_database_url_and_redis_url() -> None:
    environ = {**ENV, "DATABASE_URL": "postgres://u:pw@db/audit", "REDIS_URL": "redis://r:6379/0"}
    config = parse_config(MINIMAL, environ=environ)
    assert config.database_url == "postgresql+asyncpg://u:pw@db/audit"
    assert config.raw_database_url == "postgres://u:pw@db/audit"
    assert config.redis_url == "redis://r:6379/0"


# -- secrets never shown ----------------------------------------------------------------------


def test_reprs_show_variable_names_never_secret_values() -> None:
    environ = {
        **ENV,
        "DATABASE_URL": "postgresql://u:pw-db-secret@h/db",
        "REDIS_URL": "redis://:pw-redis-secret@r:6379/0",
    }
    config = load_config(EXAMPLE, environ=environ)
    text = repr(config)
    assert not any(s in text for s in [*SECRETS, "pw-db-secret", "pw-redis-secret"])
    assert "ANTHROPIC_API_KEY" in text and "ACME_OPENAI_KEY" in text
    provider = repr(config.providers["openai"])
    assert "api_key_env='OPENAI_API_KEY'" in provider
    assert "sk-openai-secret-value" not in provider
    assert isinstance(config.providers["openai"], ProviderConfig)


def test_a_group_step_loads_with_its_strategy_and_weights() -> None:
    targets = [
        {"group": ["openai:gpt-4.1", "local:llama"], "strategy": "weighted", "weights": [3, 1]},
        "anthropic:claude-x",
    ]
    config = parse_config(with_("routes.chat.targets", targets), environ=ENV)
    first, second = config.routes["chat"].targets
    assert first == Group.of(
        "openai:gpt-4.1", "local:llama", strategy=Strategy.WEIGHTED, weights=[3.0, 1.0]
    )
    assert second == Target("anthropic", "claude-x")
    assert config.routes["chat"].providers == {"openai", "local", "anthropic"}


def test_max_response_bytes_defaults_to_32_mib_and_reaches_the_provider() -> None:
    from resilience.client.resilient import ResilientClient
    from resilience.providers.limits import _LIMITS
    from resilience.providers.openai import OpenAIProvider

    config = parse_config(with_("providers.openai.max_response_bytes", 65_536), environ=ENV)
    assert config.providers["openai"].settings.max_response_bytes == 65_536
    assert config.providers["anthropic"].settings.max_response_bytes == 32 * 1024 * 1024
    client = ResilientClient.from_config(config, environ=ENV)
    openai = client.providers["openai"]
    assert isinstance(openai, OpenAIProvider)
    assert _LIMITS[openai.http_client] == 65_536


def test_rpm_for_providers_and_for_a_tenant_per_provider() -> None:
    data = with_("providers.openai.rpm", 600)
    data = with_("tenants.acme.providers.openai", {"rpm": 60}, data)
    config = parse_config(data, environ=ENV)
    assert config.providers["openai"].rpm == 600.0
    assert config.providers["anthropic"].rpm == 0.0
    assert config.tenants["acme"].rpm == {"openai": 60.0}


# -- check_config -----------------------------------------------------------------------------


def test_check_config_summarises_a_valid_file() -> None:
    assert check_config(EXAMPLE, environ=ENV) == (
        True,
        "ok: 4 providers, 3 routes (1 group), 2 tenants, 2 admin tokens",
    )


def test_check_config_counts_in_the_singular_and_lists_warnings(tmp_path: Path) -> None:
    path = tmp_path / "one.toml"
    path.write_text(
        '[providers.p]\nkind = "openai"\n[routes.chat]\ntargets = ["p:m"]\n[tenants.acme]\n'
    )
    ok, text = check_config(path, environ={})
    assert ok
    first, warning = text.splitlines()
    assert first == "ok: 1 provider, 1 route, 1 tenant, 0 admin tokens"
    assert warning.startswith('warning: server.tenant_from: "api_key" but no tenant')


def test_check_config_returns_the_error_instead_of_raising(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[breaker]\ncooldown_s = -3\n")
    assert check_config(path, environ={}) == (False, "breaker.cooldown_s: must be > 0, got -3")
    missing = tmp_path / "missing.toml"
    ok, text = check_config(missing, environ={})
    assert not ok and text.startswith(f"{missing}: cannot read the file")
    assert check_config(environ={}) == (
        False,
        "RESILIENCE_CONFIG: no config file given and the variable is not set",
    )
