"""The health board stays bounded and renderable whatever targets callers name."""

from __future__ import annotations

import json

import pytest

from resilience.routing.health import MAX_LABEL, HealthBoard
from resilience.routing.routes import Group, Target
from resilience.routing.strategies import Balancer
from tests.support.clock import FakeClock


def unchecked(provider: str, model: str) -> Target:
    """A target `Target()` refuses, as a subclass or an older caller might still make one:
    the board must not depend on that check to stay renderable."""
    target = object.__new__(Target)
    object.__setattr__(target, "provider", provider)
    object.__setattr__(target, "model", model)
    return target


def record(board: HealthBoard, target: Target, latency: float, clock: FakeClock) -> None:
    member = board.member(target)
    started = member.started()
    clock.advance(latency)
    member.succeeded(started)


def test_five_thousand_caller_named_targets_keep_the_board_at_its_cap() -> None:
    clock = FakeClock()
    board = HealthBoard(clock=clock, max_targets=100)
    busy = Target("openai", "gpt-4.1")
    for i in range(5000):
        record(board, busy, 0.2, clock)
        record(board, Target("openai", f"m-{i}"), 0.01, clock)
    assert len(board) == 100
    kept = {s.model: s for s in board.snapshot()}
    # the least recently used went; the target in use is the same entry all along
    assert set(kept) == {"gpt-4.1", *(f"m-{i}" for i in range(4901, 5000))}
    assert kept["gpt-4.1"].calls_total == 5000


def test_a_balanced_group_reads_the_entry_the_client_writes_after_a_flood() -> None:
    clock = FakeClock()
    board = HealthBoard(clock=clock, max_targets=5)
    balancer = Balancer(board)
    group = Group.of("a:m", "b:m", strategy="least_latency")
    balancer.order(group, "t")  # the plan takes the members' entries
    for i in range(100):
        record(board, Target("openai", f"junk-{i}"), 0.01, clock)
    assert len(board) == 5 + 2  # the cap, plus the pinned members
    record(board, Target("a", "m"), 0.5, clock)  # what the client does after an attempt
    record(board, Target("b", "m"), 0.1, clock)
    assert [t.provider for t in balancer.order(group, "t")] == ["b", "a"]


def test_a_lone_surrogate_in_a_model_name_renders_escaped() -> None:
    clock = FakeClock()
    board = HealthBoard(clock=clock)
    record(board, unchecked("openai", "x\udc80"), 0.01, clock)
    record(board, unchecked("openai", "x\udc80"), 0.01, clock)
    (snap,) = board.snapshot()
    assert snap.model == "x\\udc80" and snap.calls_total == 2
    json.dumps(snap.as_dict(), ensure_ascii=False).encode()  # what the admin API does


def test_a_very_long_model_name_is_kept_short_and_apart() -> None:
    clock = FakeClock()
    board = HealthBoard(clock=clock)
    record(board, unchecked("openai", "m" * 100_000), 0.01, clock)
    record(board, unchecked("openai", "m" * 99_999), 0.01, clock)
    models = [s.model for s in board.snapshot()]
    assert len(models) == 2 and len(set(models)) == 2
    assert all(len(m) <= MAX_LABEL for m in models)


def test_the_cap_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_targets: must be >= 1, got 0"):
        HealthBoard(max_targets=0)
