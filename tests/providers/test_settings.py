"""`ProviderSettings`: validated on creation, every error naming its field, the key never shown."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from resilience.config.load import parse_config
from resilience.config.schema import ProviderConfig
from resilience.providers import ProviderSettings, build_provider
from resilience.providers.anthropic import AnthropicProvider
from resilience.providers.limits import DEFAULT_MAX_RESPONSE_BYTES
from resilience.providers.openai import OpenAIProvider

BAD: list[tuple[dict[str, Any], str]] = [
    ({"kind": "azure"}, "kind: expected anthropic or openai, got 'azure'"),
    ({"api_key": ""}, "api_key: expected a non-empty string, or None for no key"),
    ({"base_url": "ftp://h/v1"}, "base_url: expected an http:// or https:// URL"),
    ({"base_url": "https://"}, "base_url: expected an http:// or https:// URL"),
    ({"timeout_s": 0}, "timeout_s: must be a number > 0, got 0"),
    ({"timeout_s": -1.5}, "timeout_s: must be a number > 0, got -1.5"),
    ({"timeout_s": float("inf")}, "timeout_s: must be a number > 0, got inf"),
    ({"timeout_s": True}, "timeout_s: must be a number > 0, got True"),
    ({"timeout_s": "5"}, "timeout_s: must be a number > 0, got '5'"),
    ({"location": "edge"}, "location: expected cloud or local, got 'edge'"),
    ({"embeddings": "yes"}, "embeddings: expected True, False or None, got 'yes'"),
    (
        {"kind": "anthropic", "embeddings": True},
        "embeddings: anthropic providers have no embeddings API; use kind = openai",
    ),
    ({"max_response_bytes": 100}, "max_response_bytes: must be an integer >= 1024, got 100"),
    (
        {"max_response_bytes": 65_536.0},
        "max_response_bytes: must be an integer >= 1024, got 65536.0",
    ),
]


@pytest.mark.parametrize(("changes", "message"), BAD)
def test_a_bad_value_is_refused_with_its_field_named(changes: dict[str, Any], message: str) -> None:
    values: dict[str, Any] = {"kind": "openai", **changes}
    with pytest.raises(ValueError) as info:
        ProviderSettings(**values)
    assert str(info.value) == message


def test_a_replaced_value_is_checked_again() -> None:
    settings = ProviderSettings(kind="openai", base_url="http://h/v1")
    with pytest.raises(ValueError, match=r"^timeout_s: "):
        replace(settings, timeout_s=0)


def test_secrets_are_neither_echoed_in_errors_nor_shown_in_the_repr() -> None:
    with pytest.raises(ValueError) as info:
        ProviderSettings(kind="openai", base_url="ftp://user:hunter2@h/v1")
    assert "hunter2" not in str(info.value)
    settings = ProviderSettings(kind="openai", api_key="sk-secret-value")
    assert "sk-secret-value" not in repr(settings)
    assert settings.api_key == "sk-secret-value"


def test_defaults_and_the_kinds_embeddings() -> None:
    openai = ProviderSettings(kind="openai", timeout_s=5)
    assert (openai.api_key, openai.base_url, openai.location) == (None, None, "cloud")
    assert openai.max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES
    assert openai.timeout_s == 5.0 and isinstance(openai.timeout_s, float)
    assert openai.can_embed is True
    assert replace(openai, embeddings=False).can_embed is False
    assert ProviderSettings(kind="anthropic").can_embed is False
    assert ProviderSettings(kind="anthropic", embeddings=False).can_embed is False


async def test_the_adapter_is_built_from_the_settings_it_is_given() -> None:
    settings = ProviderSettings(
        kind="openai",
        api_key="k",
        base_url="http://x/l/v1",
        timeout_s=9,
        location="local",
        embeddings=False,
    )
    provider = build_provider("l", settings)
    assert isinstance(provider, OpenAIProvider) and provider.settings is settings
    assert (provider.location, provider.can_embed, provider.base_url) == (
        "local",
        False,
        "http://x/l/v1",
    )
    assert provider.timeout.read == 9 and provider.timeout.connect == 5
    await provider.aclose()


@pytest.mark.parametrize(
    ("adapter", "kind"), [(OpenAIProvider, "anthropic"), (AnthropicProvider, "openai")]
)
def test_an_adapter_refuses_settings_for_the_other_kind(
    adapter: type[OpenAIProvider | AnthropicProvider], kind: Any
) -> None:
    with pytest.raises(ValueError, match=r"^kind: .* speaks "):
        adapter("p", ProviderSettings(kind=kind))


# -- in a config ---------------------------------------------------------------------------------


def test_a_provider_config_holds_its_settings_without_the_key() -> None:
    config = parse_config(
        {"providers": {"o": {"kind": "openai", "api_key_env": "O_KEY", "timeout_s": 7, "rpm": 60}}},
        environ={"O_KEY": "sk-o"},
    )
    provider = config.providers["o"]
    assert provider.settings == ProviderSettings(kind="openai", timeout_s=7.0)
    assert provider.settings_for({"O_KEY": "sk-rotated"}) == replace(
        provider.settings, api_key="sk-rotated"
    )
    assert provider.settings_for({}) is provider.settings  # unset: a keyless provider
    with pytest.raises(ValueError, match=r"^settings\.api_key: a config holds no key"):
        ProviderConfig(name="o", settings=ProviderSettings(kind="openai", api_key="sk-o"))
