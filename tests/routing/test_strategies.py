"""Strategies' member order, without any network: the decisions themselves."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from resilience.routing.health import HealthBoard
from resilience.routing.routes import Group, Route, Strategy, Target
from resilience.routing.strategies import EXPLORE_EVERY, Balancer
from tests.support.clock import FakeClock

MEMBERS = ("a:m", "b:m", "c:m")


def names(order: object) -> list[str]:
    return [t.provider for t in order]  # type: ignore[attr-defined]


def test_every_order_holds_each_member_exactly_once() -> None:
    board = HealthBoard(clock=FakeClock())
    balancer = Balancer(board, rng=random.Random(3))
    for strategy in Strategy:
        weights = [1.0, 2.0, 3.0] if strategy is Strategy.WEIGHTED else None
        group = Group.of(*MEMBERS, strategy=strategy, weights=weights)
        for tenant in ("t1", "t2", "t3"):
            assert sorted(names(balancer.order(group, tenant))) == ["a", "b", "c"], strategy


def test_priority_is_the_written_order() -> None:
    balancer = Balancer(HealthBoard())
    group = Group.of(*MEMBERS)
    assert names(balancer.order(group, "t")) == ["a", "b", "c"]


def test_round_robin_continues_after_the_member_that_answered() -> None:
    balancer = Balancer(HealthBoard())
    group = Group.of(*MEMBERS, strategy="round_robin")
    assert names(balancer.order(group, "t")) == ["b", "c", "a"]
    balancer.answered(group, Target("c", "m"))  # b was skipped; c answered
    assert names(balancer.order(group, "t"))[0] == "a"


def test_weighted_puts_heavier_members_next() -> None:
    balancer = Balancer(HealthBoard(), rng=random.Random(5))
    group = Group.of(*MEMBERS, strategy="weighted", weights=[1, 5, 2])
    firsts = Counter(names(balancer.order(group, "t"))[0] for _ in range(8000))
    assert firsts["b"] > firsts["c"] > firsts["a"]
    order = names(balancer.order(group, "t"))
    assert order[1:] == [m for m in ["b", "c", "a"] if m != order[0]]


def test_least_latency_prefers_unmeasured_then_fastest_and_explores_in_turn() -> None:
    clock = FakeClock()
    board = HealthBoard(clock=clock)
    balancer = Balancer(board)
    group = Group.of(*MEMBERS, strategy="least_latency")
    for provider, latency in (("a", 0.3), ("b", 0.1)):
        member = board.member(Target(provider, "m"))
        started = member.started()
        clock.advance(latency)
        member.succeeded(started)
    orders = [names(balancer.order(group, "t")) for _ in range(2 * EXPLORE_EVERY)]
    firsts = Counter(o[0] for o in orders)
    assert orders[0] == ["c", "b", "a"]  # c was never measured: it is tried first
    assert firsts["c"] == 2 * EXPLORE_EVERY - 2
    assert firsts["b"] == 1 and firsts["a"] == 1  # explored in turn, once a round each


def test_a_failure_makes_a_member_look_slower_not_faster() -> None:
    clock = FakeClock()
    member = HealthBoard(clock=clock).member(Target("a", "m"))
    started = member.started()
    clock.advance(0.2)
    member.succeeded(started)
    started = member.started()
    clock.advance(0.001)  # a fast failure
    member.failed(started, counts=True)
    assert member.ewma_s is not None and member.ewma_s > 0.2


def test_least_busy_orders_by_calls_in_flight() -> None:
    board = HealthBoard(clock=FakeClock())
    balancer = Balancer(board)
    group = Group.of(*MEMBERS, strategy="least_busy")
    board.member(Target("a", "m")).started()
    board.member(Target("a", "m")).started()
    board.member(Target("c", "m")).started()
    assert names(balancer.order(group, "t")) == ["b", "c", "a"]


def test_hash_is_stable_and_differs_between_tenants() -> None:
    balancer = Balancer(HealthBoard())
    group = Group.of(*MEMBERS, strategy="hash")
    other = Balancer(HealthBoard())  # another process computes the same order
    firsts = set()
    for i in range(30):
        order = names(balancer.order(group, f"tenant-{i}"))
        assert order == names(balancer.order(group, f"tenant-{i}"))
        assert order == names(other.order(Group.of(*MEMBERS, strategy="hash"), f"tenant-{i}"))
        firsts.add(order[0])
    assert firsts == {"a", "b", "c"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "weighted"}, "weighted needs one weight per member"),
        ({"strategy": "weighted", "weights": [1, 2]}, "weighted needs one weight per member"),
        ({"strategy": "weighted", "weights": [1, 2, float("inf")]}, "finite and > 0"),
        ({"strategy": "weighted", "weights": [1, 2, -1]}, "finite and > 0"),
        ({"weights": [1, 2, 3]}, "only for strategy 'weighted'"),
        ({"strategy": "fastest"}, "'fastest' is not a valid Strategy"),
    ],
)
def test_bad_groups_are_refused_with_the_reason(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Group.of(*MEMBERS, **kwargs)  # type: ignore[arg-type]


def test_a_group_needs_distinct_members() -> None:
    with pytest.raises(ValueError, match="repeat a target"):
        Group.of("a:m", "a:m")
    with pytest.raises(ValueError, match="non-empty"):
        Group(())


def test_routes_list_group_members_among_their_targets() -> None:
    route = Route.of("chat", Group.of("a:m", "b:m", strategy="hash"), "c:m")
    assert [str(t) for t in route.iter_targets()] == ["a:m", "b:m", "c:m"]
    assert route.providers == {"a", "b", "c"}
    assert repr(route) == "Route('chat': hash[a:m, b:m] -> c:m)"
