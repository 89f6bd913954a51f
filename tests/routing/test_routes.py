"""Targets and routes: parsing `provider:model`, round trips, and what a route must hold."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from resilience.routing.routes import Route, Target


def test_parse_splits_on_the_first_colon_so_models_may_hold_colons() -> None:
    target = Target.parse("local:llama3.1:8b")
    assert target == Target(provider="local", model="llama3.1:8b")
    assert str(target) == "local:llama3.1:8b"
    assert Target.parse("anthropic:claude-sonnet-4-6") == Target("anthropic", "claude-sonnet-4-6")


def test_parse_strips_spaces_around_both_parts() -> None:
    assert Target.parse(" openai : gpt-4.1 ") == Target("openai", "gpt-4.1")


@pytest.mark.parametrize("text", ["", "plain", ":model", "provider:", " : ", "openai:  "])
def test_parse_rejects_a_missing_provider_or_model(text: str) -> None:
    with pytest.raises(ValueError, match="expected provider:model"):
        Target.parse(text)


@pytest.mark.parametrize(
    ("provider", "model"),
    [("", "m"), ("a:b", "m"), (" a", "m"), ("a", ""), ("a", " m"), ("a", "m\n")],
)
def test_a_target_that_would_not_survive_str_and_parse_is_refused(
    provider: str, model: str
) -> None:
    with pytest.raises(ValueError, match="expected provider:model"):
        Target(provider, model)


_PROVIDER = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,20}", fullmatch=True)
_MODEL = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:/-]{0,30}", fullmatch=True)


@given(provider=_PROVIDER, model=_MODEL)
def test_str_and_parse_round_trip(provider: str, model: str) -> None:
    target = Target(provider, model)
    assert Target.parse(str(target)) == target


def test_a_target_is_frozen_slotted_and_hashable() -> None:
    target = Target("openai", "gpt-4.1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.model = "gpt-5"  # type: ignore[misc]
    assert not hasattr(target, "__dict__")
    assert {target, Target("openai", "gpt-4.1")} == {target}


def test_route_of_accepts_strings_and_targets_in_order() -> None:
    route = Route.of("chat", "anthropic:claude-sonnet-4-6", Target("openai", "gpt-4.1"))
    assert route.name == "chat"
    assert route.targets == (Target("anthropic", "claude-sonnet-4-6"), Target("openai", "gpt-4.1"))
    assert list(route.iter_targets()) == list(route.targets)
    assert route.providers == frozenset({"anthropic", "openai"})


def test_route_repr_reads_as_the_chain() -> None:
    route = Route.of("chat", "anthropic:claude-sonnet-4-6", "local:llama3.1:8b")
    assert repr(route) == "Route('chat': anthropic:claude-sonnet-4-6 -> local:llama3.1:8b)"


def test_a_route_needs_a_name_and_at_least_one_target() -> None:
    with pytest.raises(ValueError, match="at least one target"):
        Route("chat", ())
    with pytest.raises(ValueError, match="route name"):
        Route("", (Target("openai", "gpt-4.1"),))


def test_route_steps_must_be_targets_in_a_tuple() -> None:
    with pytest.raises(TypeError, match="expected Target or Group, got"):
        Route("chat", ("openai:gpt-4.1",))  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="tuple"):
        Route("chat", [Target("openai", "gpt-4.1")])  # type: ignore[arg-type]


def test_routes_compare_by_value_and_are_frozen() -> None:
    assert Route.of("chat", "openai:gpt-4.1") == Route("chat", (Target("openai", "gpt-4.1"),))
    route = Route.of("chat", "openai:gpt-4.1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        route.name = "other"  # type: ignore[misc]
