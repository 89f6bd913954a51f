"""`tpm` beside `rpm`, at `[providers.X]` and `[tenants.T.providers.X]`: parsed, refused when
not a number >= 0, and what `ResilientClient.from_config` and `ConfigTenants` build."""

from __future__ import annotations

import pytest

from resilience.client.resilient import ResilientClient
from resilience.config.load import parse_config
from resilience.tenancy.directory import ConfigTenants
from tests.config.test_config import ENV, MINIMAL, error_of, with_


async def test_tpm_at_both_levels_reaches_the_client_and_the_tenants_policy() -> None:
    data = with_("providers.openai.tpm", 2_000_000)
    data = with_("tenants.acme.providers", {"openai": {"tpm": 150_000, "rpm": 60}}, data)
    config = parse_config(data, environ=ENV)
    assert config.providers["openai"].tpm == 2_000_000
    assert config.tenants["acme"].tpm == {"openai": 150_000}
    client = ResilientClient.from_config(config, environ=ENV)
    assert client.tpm == {"openai": 2_000_000}  # 0 (unlimited) is left out
    policy = await ConfigTenants(config, environ=ENV).policy_for("acme")
    assert policy is not None and policy.tpm == {"openai": 150_000}
    assert "tpm={'openai': 150000.0}" in repr(policy)


def test_absent_or_zero_is_unlimited() -> None:
    config = parse_config(with_("providers.openai.tpm", 0), environ=ENV)
    assert ResilientClient.from_config(config, environ=ENV).tpm == {}
    assert parse_config(MINIMAL, environ=ENV).tenants["acme"].tpm == {}


@pytest.mark.parametrize("bad", [-1, "lots", True, [1]])
def test_a_bad_tpm_is_refused_where_it_is(bad: object) -> None:
    assert error_of(with_("providers.openai.tpm", bad)).key == "providers.openai.tpm"
    tenant = with_("tenants.acme.providers", {"openai": {"tpm": bad}})
    assert error_of(tenant).key == "tenants.acme.providers.openai.tpm"
