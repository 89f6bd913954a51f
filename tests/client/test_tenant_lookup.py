"""Tenant policies from a `TenantLookup` (the app's own table behind `CachedTenants`): the
client asks once per call, through the real SDKs and the chaos upstream."""

from __future__ import annotations

import asyncio

import httpx2
import pytest

from resilience.chaos import ChaosUpstream
from resilience.client.outcomes import OutcomeStatus
from resilience.client.resilient import ResilientClient, TenantPolicy
from resilience.config.load import parse_config
from resilience.config.schema import Config
from resilience.errors import AllTargetsFailed, TenantLookupFailed
from resilience.tenancy.context import tenant_scope
from resilience.tenancy.directory import CachedTenants, ConfigTenants
from resilience.types import TenantId
from tests.support.client import CHAT, Harness, route

ROUTES = {
    "chat": route("chat", "primary:gpt-4.1", "local:llama3.1"),
    "solo": route("solo", "primary:gpt-4.1"),
}


class Policies:
    """The app's table of tenant policies, in memory; counts every ask."""

    def __init__(self, policies: dict[TenantId, TenantPolicy] | None = None) -> None:
        self.policies = dict(policies or {})
        self.asked: list[TenantId] = []
        self.down = False

    async def tenant_for_key(self, key_sha256: str) -> TenantId | None:
        return None

    async def policy_for(self, tenant: TenantId) -> TenantPolicy | None:
        self.asked.append(tenant)
        await asyncio.sleep(0)  # a real query yields to the loop
        if self.down:
            raise ConnectionError("the tenants table is unreachable")
        return self.policies.get(tenant)


async def test_a_policy_from_the_lookup_applies_to_the_call(harness: Harness) -> None:
    table = Policies({"onprem": TenantPolicy(local_only=True)})
    client = await harness.client(routes=ROUTES, tenants=CachedTenants(table, clock=harness.clock))

    onprem = await client.complete(CHAT, route="chat", tenant="onprem")
    assert onprem.target.provider == "local"
    assert [o.status for o in onprem.outcomes] == [
        OutcomeStatus.LOCAL_ONLY,
        OutcomeStatus.SUCCEEDED,
    ]
    other = await client.complete(CHAT, route="chat", tenant="acme")  # unlisted: defaults
    assert other.target.provider == "primary"
    assert harness.chaos.hit_count(upstream="primary") == 1
    assert table.asked == ["onprem", "acme"]


async def test_each_call_asks_the_lookup_once_and_the_cache_answers_the_rest(
    harness: Harness,
) -> None:
    table = Policies({"acme": TenantPolicy()})
    uncached = await harness.client(tenants=CachedTenants(table, ttl_s=0, clock=harness.clock))
    for _ in range(5):
        await uncached.complete(CHAT, route="chat", tenant="acme")
    assert table.asked == ["acme"] * 5  # once per call, not once per target or attempt

    table.asked.clear()
    cached = CachedTenants(table, ttl_s=30, clock=harness.clock)
    client = await harness.client(tenants=cached)
    for _ in range(5):
        await client.complete(CHAT, route="chat", tenant="acme")
        async with await client.stream(CHAT, route="chat", tenant="acme") as stream:
            [chunk async for chunk in stream]
    assert table.asked == ["acme"]
    assert cached.policy_stats.hits == 9


async def test_a_changed_policy_applies_within_the_ttl_without_a_restart(
    harness: Harness,
) -> None:
    table = Policies()
    client = await harness.client(
        routes=ROUTES, tenants=CachedTenants(table, ttl_s=30, clock=harness.clock)
    )
    assert (await client.complete(CHAT, route="chat", tenant="acme")).target.provider == "primary"

    table.policies["acme"] = TenantPolicy(local_only=True)  # the app's admin moved acme on-prem
    harness.clock.advance(29)
    assert (await client.complete(CHAT, route="chat", tenant="acme")).target.provider == "primary"
    harness.clock.advance(1)
    assert (await client.complete(CHAT, route="chat", tenant="acme")).target.provider == "local"
    assert harness.chaos.hit_count(upstream="primary") == 2


async def test_the_tenants_own_provider_key_and_rate_come_from_the_lookup(
    harness: Harness,
) -> None:
    policy = TenantPolicy(api_keys={"primary": "acme-own-key"}, rpm={"primary": 1})
    table = Policies({"acme": policy})
    client = await harness.client(routes=ROUTES, tenants=CachedTenants(table, clock=harness.clock))

    first = await client.complete(CHAT, route="chat", tenant="acme")
    assert first.target.provider == "primary"
    assert harness.chaos.hits[-1].api_key == "acme-own-key"
    second = await client.complete(CHAT, route="chat", tenant="acme")  # 1 rpm: spent
    assert second.target.provider == "local"
    assert second.outcomes[0].status is OutcomeStatus.RPM_LIMITED
    other = await client.complete(CHAT, route="solo", tenant="globex")
    assert harness.chaos.hits[-1].api_key == "shared-key" and other.attempts == 1


async def test_a_route_of_the_tenants_own_from_the_lookup_is_used(harness: Harness) -> None:
    own = {"chat": route("chat", "fallback:claude-x")}
    table = Policies({"acme": TenantPolicy(routes=own)})
    client = await harness.client(routes=ROUTES, tenants=CachedTenants(table, clock=harness.clock))
    result = await client.complete(CHAT, route="chat", tenant="acme")
    assert (result.target.provider, result.target.model) == ("fallback", "claude-x")


async def test_a_route_of_the_lookup_naming_an_unknown_provider_is_refused_before_any_call(
    harness: Harness,
) -> None:
    table = Policies({"acme": TenantPolicy(routes={"chat": route("chat", "nowhere:m")})})
    client = await harness.client(routes=ROUTES, tenants=CachedTenants(table, clock=harness.clock))
    with pytest.raises(ValueError, match="unknown provider 'nowhere'"):
        await client.complete(CHAT, route="chat", tenant="acme")
    assert harness.chaos.hits == []


async def test_a_lookup_that_raises_is_tenant_lookup_failed_not_cached_and_touches_no_breaker(
    harness: Harness,
) -> None:
    table = Policies({"acme": TenantPolicy()})
    table.down = True
    client = await harness.client(tenants=CachedTenants(table, clock=harness.clock))
    for _ in range(3):
        with pytest.raises(TenantLookupFailed) as failed:
            await client.complete(CHAT, route="chat", tenant="acme")
        assert isinstance(failed.value.__cause__, ConnectionError)
        assert failed.value.tenant == "acme"
    assert harness.chaos.hits == []
    assert client.registry.get("acme", "primary").calls_in_window() == 0

    table.down = False
    assert (await client.complete(CHAT, route="chat", tenant="acme")).target.provider == "primary"
    assert table.asked == ["acme"] * 4


async def test_many_tenants_at_once_each_get_their_own_policy(harness: Harness) -> None:
    tenants = [f"t{i}" for i in range(200)]
    table = Policies({t: TenantPolicy(local_only=i % 2 == 0) for i, t in enumerate(tenants)})
    cached = CachedTenants(table, clock=harness.clock)
    client = await harness.client(routes=ROUTES, tenants=cached)

    async def call(tenant: TenantId) -> str:
        with tenant_scope(tenant):  # the tenant from the context, as in a request
            result = await client.complete(CHAT, route="chat")
        return result.target.provider

    answered = await asyncio.gather(*(call(t) for t in tenants * 3))
    for i, provider in enumerate(answered):
        assert provider == ("local" if i % 2 == 0 else "primary"), (tenants[i % 200], provider)
    assert sorted(table.asked) == sorted(tenants)  # one lookup per tenant, shared at once
    assert cached.policy_stats.lookups == 200


async def test_the_tenants_mapping_shows_what_is_known_without_waiting(harness: Harness) -> None:
    table = Policies({"acme": TenantPolicy(rpm={"primary": 60})})
    cached = CachedTenants(table, clock=harness.clock)
    client = await harness.client(tenants=cached)
    assert client.tenants.get("acme") is None  # nothing asked yet
    await client.complete(CHAT, route="chat", tenant="acme")
    assert client.tenants["acme"].rpm == {"primary": 60}
    assert await client.policy_for("acme") == TenantPolicy(rpm={"primary": 60})
    assert await client.policy_for("nobody") == TenantPolicy()


async def test_all_targets_failed_for_a_policy_from_the_lookup_names_its_skips(
    harness: Harness,
) -> None:
    table = Policies({"onprem": TenantPolicy(local_only=True)})
    client = await harness.client(routes=ROUTES, tenants=CachedTenants(table, clock=harness.clock))
    with pytest.raises(AllTargetsFailed) as failed:
        await client.complete(CHAT, route="solo", tenant="onprem")
    assert [o.status for o in failed.value.outcomes] == [OutcomeStatus.LOCAL_ONLY]


# -- from_config ----------------------------------------------------------------------------------

ENV = {"UPSTREAM_KEY": "shared-key", "ACME_KEY": "acme-from-toml"}


def _config() -> Config:
    return parse_config(
        {
            "providers": {
                "primary": {
                    "kind": "openai",
                    "api_key_env": "UPSTREAM_KEY",
                    "base_url": "http://chaos/primary/v1",
                },
                "local": {
                    "kind": "openai",
                    "base_url": "http://chaos/local/v1",
                    "location": "local",
                },
            },
            "routes": {"chat": ["primary:gpt-4.1", "local:llama3.1"]},
            "tenants": {
                "acme": {"providers": {"primary": {"api_key_env": "ACME_KEY"}}},
                "onprem": {"local_only": True},
            },
        },
        environ=ENV,
    )


async def test_from_config_serves_the_toml_tenants_through_config_tenants() -> None:
    chaos = ChaosUpstream()
    async with httpx2.AsyncClient(transport=chaos.transport()) as http:
        config = _config()
        client = ResilientClient.from_config(config, environ=ENV, http_client=http)
        assert isinstance(client.tenants, ConfigTenants)
        assert client.tenants["onprem"].local_only
        onprem = await client.complete(CHAT, route="chat", tenant="onprem")
        assert onprem.target.provider == "local"
        await client.complete(CHAT, route="chat", tenant="acme")
        assert chaos.hits[-1].api_key == "acme-from-toml"
        await client.aclose()


async def test_from_config_takes_the_apps_lookup_instead_of_the_toml_tenants() -> None:
    chaos = ChaosUpstream()
    table = Policies({"acme": TenantPolicy(local_only=True)})
    async with httpx2.AsyncClient(transport=chaos.transport()) as http:
        client = ResilientClient.from_config(
            _config(),
            environ=ENV,
            http_client=http,
            tenants=CachedTenants(table),
        )
        result = await client.complete(CHAT, route="chat", tenant="acme")
        assert result.target.provider == "local"  # the table's policy, not the TOML's
        onprem = await client.complete(CHAT, route="chat", tenant="onprem")
        assert onprem.target.provider == "primary"  # the TOML's tenants are not asked
        assert table.asked == ["acme", "onprem"]
        await client.aclose()
