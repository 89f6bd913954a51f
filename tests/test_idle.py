"""`IdleMap`: entries untouched for one to two TTLs go, used and pinned ones stay."""

from __future__ import annotations

import pytest

from resilience.idle import IdleMap
from tests.support.clock import FakeClock

TTL = 60.0


def idle_map(clock: FakeClock) -> IdleMap[str, int]:
    return IdleMap(TTL, clock=clock)


def test_an_entry_untouched_for_two_ttls_is_forgotten_and_one_used_within_a_ttl_stays() -> None:
    clock = FakeClock()
    held = idle_map(clock)
    held.put("quiet", 1)
    held.put("busy", 2)
    for _ in range(4):
        clock.advance(TTL / 2 + 1)
        assert held.find("busy") == 2
    assert held.find("quiet") is None
    assert held.peek("quiet") is None
    assert held.peek("busy") == 2
    assert len(held) == 1


def test_an_entry_of_the_previous_generation_is_moved_forward_and_survives_the_next_turn() -> None:
    clock = FakeClock()
    held = idle_map(clock)
    held.put("k", 1)
    clock.advance(TTL)
    assert held.find("other") is None  # the turn: k is in the previous generation now
    assert held.current.get("k") is None
    assert held.find("k") == 1  # moved forward
    assert held.current.get("k") == 1
    clock.advance(TTL)
    assert held.find("other") is None  # the next turn keeps it, as previous
    assert held.peek("k") == 1


def test_nothing_turns_before_the_ttl_and_nothing_turns_without_a_call() -> None:
    clock = FakeClock()
    held = idle_map(clock)
    held.put("k", 1)
    clock.advance(TTL - 0.001)
    assert held.turn_if_due() == 0
    assert held.current == {"k": 1}
    clock.advance(10 * TTL)
    assert held.peek("k") == 1  # peeking never turns: forgetting needs find or turn_if_due
    assert len(held) == 1


def test_turn_if_due_counts_what_it_forgot() -> None:
    clock = FakeClock()
    held = idle_map(clock)
    for key in ("a", "b", "c"):
        held.put(key, 0)
    clock.advance(TTL)
    assert held.turn_if_due() == 0  # a, b and c move to the previous generation
    assert held.find("a") == 0
    clock.advance(TTL)
    assert held.turn_if_due() == 2  # b and c went; a was used
    assert sorted(held.values()) == [0]
    assert held.turn_if_due() == 0  # not due again until another TTL


def test_a_pinned_entry_is_never_forgotten_until_unpinned() -> None:
    clock = FakeClock()
    held = idle_map(clock)
    held.put("open", 7)
    held.pin("open", 7)
    for _ in range(5):
        clock.advance(TTL)
        assert held.turn_if_due() == 0
        assert held.current == {"open": 7}  # each generation starts with the pins: no miss
    assert held.peek("open") == 7
    assert held.find("open") == 7
    assert len(held) == 1
    held.unpin("open")
    clock.advance(TTL)
    held.turn_if_due()
    clock.advance(TTL)
    assert held.turn_if_due() == 1
    assert held.peek("open") is None
    assert len(held) == 0


def test_a_pinned_entry_is_found_after_a_turn_even_if_it_was_never_put() -> None:
    clock = FakeClock()
    held = idle_map(clock)
    held.pin("restored", 3)  # held out of eviction only, not looked up yet
    assert held.find("restored") == 3
    assert held.current.get("restored") == 3


def test_values_lists_each_entry_once_across_generations_and_pins() -> None:
    clock = FakeClock()
    held = idle_map(clock)
    held.put("a", 1)
    held.pin("a", 1)
    held.put("b", 2)
    clock.advance(TTL)
    held.turn_if_due()  # a is now in the pinned map, the current and the previous generation
    held.put("c", 3)
    assert sorted(held.values()) == [1, 2, 3]
    assert len(held) == 3


def test_memory_is_bounded_by_two_generations() -> None:
    clock = FakeClock()
    held = idle_map(clock)
    peak = 0
    for i in range(10_000):
        if i % 100 == 0:
            clock.advance(10.0)
        if held.find(str(i)) is None:
            held.put(str(i), i)
        peak = max(peak, len(held)) if i % 100 == 99 else peak
    assert peak <= 1_300  # two generations of 60 s at 100 keys per 10 s


@pytest.mark.parametrize("ttl", [0.0, -1.0])
def test_the_ttl_must_be_positive(ttl: float) -> None:
    with pytest.raises(ValueError, match="ttl_s: must be > 0"):
        IdleMap(ttl, clock=FakeClock())
