"""`[bulkhead]` and `[tenants.T.providers.X] max_concurrent`: parsed, refused by key, and
what `ResilientClient.from_config` builds from them."""

from __future__ import annotations

from typing import Any

import pytest

from resilience.client.resilient import ResilientClient
from resilience.config.load import parse_config
from resilience.routing.bulkhead import BulkheadPolicy
from tests.config.test_config import ENV, MINIMAL, error_of, with_

EVERY_KEY: dict[str, Any] = {
    "enabled": True,
    "max_concurrent_per_tenant": 8,
    "max_wait_s": 0.25,
    "initial_limit": 10,
    "min_limit": 2,
    "max_limit": 50,
}


def test_every_bulkhead_key_parses_into_the_policy() -> None:
    config = parse_config(with_("bulkhead", EVERY_KEY), environ=ENV)
    assert config.bulkhead == BulkheadPolicy(
        max_concurrent_per_tenant=8, max_wait_s=0.25, initial_limit=10, min_limit=2, max_limit=50
    )
    client = ResilientClient.from_config(config, environ=ENV)
    assert client.bulkheads is not None
    assert client.bulkheads.gate("openai").policy == config.bulkhead


def test_bulkheads_are_on_by_default_with_the_policy_defaults() -> None:
    config = parse_config(MINIMAL, environ=ENV)
    assert config.bulkhead == BulkheadPolicy()
    client = ResilientClient.from_config(config, environ=ENV)
    assert client.bulkheads is not None and client.bulkheads.policy == BulkheadPolicy()


def test_enabled_false_gives_a_client_without_gates() -> None:
    config = parse_config(with_("bulkhead", {"enabled": False, "max_limit": 5}), environ=ENV)
    assert config.bulkhead is None
    assert ResilientClient.from_config(config, environ=ENV).bulkheads is None


def test_a_whole_number_wait_is_accepted() -> None:
    config = parse_config(with_("bulkhead.max_wait_s", 2), environ=ENV)
    assert config.bulkhead is not None and config.bulkhead.max_wait_s == 2


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("enabled", "yes", "expected true or false, got 'yes'"),
        ("max_wait_s", -1, "must be a finite number >= 0, got -1"),
        ("max_wait_s", "1s", "expected a number, got '1s'"),
        ("max_wait_s", float("inf"), "expected a finite number, got inf"),
        ("min_limit", 0, "must be an integer >= 1, got 0"),
        ("initial_limit", 2.5, "expected an integer, got 2.5"),
        ("max_limit", True, "expected a number (integer), got true"),
        ("max_concurrent_per_tenant", 0, "must be an integer >= 1, got 0"),
    ],
)
def test_a_bad_bulkhead_value_is_refused_naming_its_key(key: str, value: Any, problem: str) -> None:
    error = error_of(with_(f"bulkhead.{key}", value))
    assert (error.key, error.problem) == (f"bulkhead.{key}", problem)


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"min_limit": 10, "max_limit": 5, "initial_limit": 5}, "bulkhead.max_limit"),
        ({"initial_limit": 300}, "bulkhead.initial_limit"),  # above max_limit's 200
        ({"min_limit": 30}, "bulkhead.initial_limit"),  # below min_limit
    ],
)
def test_limits_out_of_order_are_refused_naming_the_key_that_breaks_it(
    values: dict[str, int], key: str
) -> None:
    assert error_of(with_("bulkhead", values)).key == key


def test_an_unknown_bulkhead_key_is_refused_with_a_suggestion() -> None:
    error = error_of(with_("bulkhead.max_wait", 1.0))
    assert error.key == "bulkhead.max_wait"
    assert "did you mean 'max_wait_s'?" in error.problem


def test_a_tenant_max_concurrent_reaches_its_tenant_policy() -> None:
    data = with_("tenants.acme.providers.openai", {"max_concurrent": 3, "rpm": 60})
    config = parse_config(data, environ=ENV)
    assert config.tenants["acme"].max_concurrent == {"openai": 3}
    client = ResilientClient.from_config(config, environ=ENV)
    assert client.tenants["acme"].max_concurrent == {"openai": 3}


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        (0, "must be >= 1, got 0"),
        (-2, "must be >= 1, got -2"),
        (1.5, "expected an integer, got 1.5"),
        ("4", "expected a number (integer), got '4'"),
    ],
)
def test_a_tenant_max_concurrent_below_one_or_not_an_integer_is_refused(
    value: Any, problem: str
) -> None:
    error = error_of(with_("tenants.acme.providers.openai.max_concurrent", value))
    assert (error.key, error.problem) == ("tenants.acme.providers.openai.max_concurrent", problem)
