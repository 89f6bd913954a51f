"""Provider gates: tenants' caps, the reserve, round-robin grants, the AIMD limit, cancelled
waiters.

Time never moves here but through the gate's own wait timer in one test: grants are driven
by releasing slots, and `one_loop_turn` only lets tasks already woken run (no time passes).
`at_once` is stricter still: it takes one step of a call by hand, so a call it accepts never
waited at all, not even for a turn of the loop.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Coroutine, Iterable

import pytest

from resilience.routing.bulkhead import (
    BulkheadPolicy,
    Bulkheads,
    Outcome,
    ProviderGate,
    Refusal,
    Slot,
)
from tests.support.clock import FakeClock

LONG_WAIT_S = 3600.0
"""Waits that never run out within a test: grants come from releases, never from time."""


def reserve_of(limit: int) -> int:
    """The documented reserve, in whole numbers: a tenth of the limit rounded up, none at 1."""
    return 0 if limit < 2 else -(-limit // 10)


def fixed(limit: int, *, max_concurrent_per_tenant: int | None = None) -> BulkheadPolicy:
    """A policy whose limit cannot move, to test fairness apart from the AIMD."""
    return BulkheadPolicy(
        initial_limit=limit,
        min_limit=limit,
        max_limit=limit,
        max_wait_s=LONG_WAIT_S,
        max_concurrent_per_tenant=max_concurrent_per_tenant,
    )


async def one_loop_turn() -> None:
    """Let every task that is ready run up to its next await; no time passes."""
    await asyncio.sleep(0)


def slot_of(got: Slot | Refusal) -> Slot:
    assert isinstance(got, Slot), got
    return got


def at_once(call: Coroutine[object, None, Slot | Refusal]) -> Slot:
    """The slot `call` (an `acquire`) returns at its first step: proof that it never waited,
    since a call that waits gives the loop its future there instead of returning."""
    try:
        call.send(None)
    except StopIteration as ended:
        got: Slot | Refusal = ended.value
        return slot_of(got)
    call.close()
    raise AssertionError("the call waited")


async def hold(gate: ProviderGate, tenant: str, n: int) -> list[Slot]:
    """`n` slots taken at once (the gate has room: none of these waits)."""
    return [slot_of(await gate.acquire(tenant, max_wait_s=0)) for _ in range(n)]


async def hold_one_each(gate: ProviderGate, tenants: Iterable[str]) -> list[Slot]:
    """One slot for each of `tenants`, none of which holds one yet."""
    return [slot for tenant in tenants for slot in await hold(gate, tenant, 1)]


def waiters(
    gate: ProviderGate, tenant: str, n: int, granted: asyncio.Queue[Slot]
) -> list[asyncio.Task[None]]:
    """`n` tasks each waiting for a slot, which they put in `granted`."""

    async def wait_for_slot() -> None:
        granted.put_nowait(slot_of(await gate.acquire(tenant, max_wait_s=LONG_WAIT_S)))

    return [asyncio.create_task(wait_for_slot()) for _ in range(n)]


async def cancel_all(tasks: Iterable[asyncio.Task[None]]) -> None:
    tasks = list(tasks)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def release_all(slots: Iterable[Slot], outcome: Outcome) -> None:
    for slot in slots:
        slot.release(outcome)


def drained(queue: asyncio.Queue[Slot]) -> list[Slot]:
    got = []
    while not queue.empty():
        got.append(queue.get_nowait())
    return got


def assert_empty(gate: ProviderGate) -> None:
    snapshot = gate.snapshot()
    assert (gate.in_flight, gate.waiting) == (0, 0)
    assert (snapshot["tenants"], snapshot["tenants_total"]) == ({}, 0)


# --- tenants' own caps ---------------------------------------------------------------------


async def test_a_tenant_at_its_own_cap_is_refused_at_once_and_others_are_not() -> None:
    gate = ProviderGate("p", BulkheadPolicy(max_concurrent_per_tenant=3, initial_limit=20))
    acme = await hold(gate, "acme", 3)
    globex = await hold(gate, "globex", 3)  # the same default cap, its own count
    assert await gate.acquire("acme") is Refusal.TENANT_LIMIT
    initech = await hold(gate, "initech", 3)
    # a per-tenant cap replaces the default, both ways
    assert await gate.acquire("globex", tenant_limit=2) is Refusal.TENANT_LIMIT
    more = [slot_of(await gate.acquire("umbrella", tenant_limit=11)) for _ in range(9)]
    assert (gate.in_flight, gate.limit) == (18, 20)  # all but the reserve (2 of 20)
    # below its cap, a tenant already holding slots is refused by the provider, not its cap
    below_its_cap = await gate.acquire("umbrella", tenant_limit=11, max_wait_s=0)
    assert below_its_cap is Refusal.PROVIDER_LIMIT
    reserved = await hold_one_each(gate, ("hooli", "wayne"))  # holding nothing: the reserve
    assert (gate.in_flight, gate.limit) == (20, 20)  # the provider is full now
    # at its cap, the tenant does not wait for the provider: it is refused in this turn
    refused = asyncio.create_task(gate.acquire("acme", max_wait_s=LONG_WAIT_S))
    await one_loop_turn()
    assert refused.done() and refused.result() is Refusal.TENANT_LIMIT
    # below its cap, a tenant finding the provider full is a provider refusal
    assert await gate.acquire("stark", max_wait_s=0) is Refusal.PROVIDER_LIMIT
    assert gate.snapshot()["refused_total"] == {"tenant_limit": 3, "provider_limit": 2}
    assert [
        gate.in_flight_of(t) for t in ("acme", "globex", "initech", "umbrella", "hooli", "wayne")
    ] == [3, 3, 3, 9, 1, 1]
    release_all([*acme, *globex, *initech, *more, *reserved], "neutral")
    assert_empty(gate)


async def test_a_tenants_cap_counts_its_waiters_too() -> None:
    gate = ProviderGate("p", fixed(2, max_concurrent_per_tenant=2))
    held = await hold_one_each(gate, ("globex", "initech"))  # one each: a limit of 2 is full
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    tasks = waiters(gate, "acme", 2, granted)
    await one_loop_turn()
    assert gate.waiting_of("acme") == 2
    assert await gate.acquire("acme") is Refusal.TENANT_LIMIT
    await cancel_all(tasks)
    release_all(held, "neutral")
    assert_empty(gate)


# --- the reserve --------------------------------------------------------------------------


async def test_a_tenant_alone_may_use_the_limit_less_the_reserve() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20, max_wait_s=0))
    held = await hold(gate, "acme", 18)  # 20 less a reserve of 2
    assert await gate.acquire("acme") is Refusal.PROVIDER_LIMIT
    assert gate.snapshot()["tenants"] == {"acme": {"in_flight": 18, "waiting": 0}}
    # a second and a third tenant holding nothing get a reserved slot each, at once
    held.append(at_once(gate.acquire("globex")))
    assert await gate.acquire("globex") is Refusal.PROVIDER_LIMIT  # one is all it gets
    held.append(at_once(gate.acquire("initech")))
    assert await gate.acquire("umbrella") is Refusal.PROVIDER_LIMIT  # the limit is full
    assert [gate.in_flight_of(t) for t in ("acme", "globex", "initech")] == [18, 1, 1]
    release_all(held, "neutral")
    assert_empty(gate)


async def test_a_quiet_tenant_is_admitted_at_once_while_a_noisy_one_fills_the_rest() -> None:
    """A noisy tenant's calls hold all but the reserve and 400 more wait: quiet tenants'
    calls go in without waiting at all, one per quiet tenant until the reserve is used."""
    limit = 30  # a reserve of 3
    gate = ProviderGate("p", fixed(limit))
    noisy = deque(await hold(gate, "noisy", 27))
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    tasks = waiters(gate, "noisy", 400, granted)
    await one_loop_turn()
    assert (gate.in_flight, gate.waiting, granted.qsize()) == (27, 400, 0)
    quiet = [at_once(gate.acquire(f"quiet-{i}", max_wait_s=LONG_WAIT_S)) for i in range(3)]
    assert (gate.in_flight, gate.waiting) == (30, 400)
    print(f"\n{len(quiet)} quiet tenants admitted at once beside 27 noisy calls and 400 waiting")
    # the reserve is used: a fourth quiet tenant waits, though only for the next freed slot,
    # ahead of the 400 noisy waiters queued before it
    (fourth,) = waiters(gate, "quiet-3", 1, granted)
    await one_loop_turn()
    assert not fourth.done() and gate.waiting == 401
    noisy.popleft().release("success")
    await one_loop_turn()
    quiet += drained(granted)
    assert [slot.tenant for slot in quiet] == ["quiet-0", "quiet-1", "quiet-2", "quiet-3"]
    assert (gate.in_flight_of("noisy"), gate.waiting_of("noisy")) == (26, 400)
    # a reserved slot freed goes to none of the noisy waiters: it waits for a quiet tenant
    quiet.pop(0).release("success")
    await one_loop_turn()
    assert (gate.in_flight, granted.qsize()) == (29, 0)
    quiet.append(at_once(gate.acquire("quiet-4", max_wait_s=LONG_WAIT_S)))
    await cancel_all(tasks)
    release_all([*noisy, *quiet], "neutral")
    assert_empty(gate)


async def test_the_reserve_never_lets_in_a_tenant_that_already_holds_a_slot() -> None:
    gate = ProviderGate("p", fixed(20))  # a reserve of 2
    acme = deque(await hold(gate, "acme", 18))
    globex = [at_once(gate.acquire("globex"))]
    assert (gate.in_flight, gate.limit) == (19, 20)  # one slot free, and still:
    assert await gate.acquire("acme", max_wait_s=0) is Refusal.PROVIDER_LIMIT
    assert await gate.acquire("globex", max_wait_s=0) is Refusal.PROVIDER_LIMIT
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    tasks = [*waiters(gate, "acme", 3, granted), *waiters(gate, "globex", 1, granted)]
    await one_loop_turn()
    assert (gate.in_flight, gate.waiting, granted.qsize()) == (19, 4, 0)
    initech = at_once(gate.acquire("initech"))  # the free slot is for a tenant holding none
    # globex holds nothing once its call ends: its waiter may take the slot freed
    globex.pop().release("success")
    await one_loop_turn()
    globex += drained(granted)
    assert [slot.tenant for slot in globex] == ["globex"] and gate.waiting == 3
    # the others hold 2: the slots acme frees stay free until fewer than 20 - 2 are in flight
    for in_flight_after in (19, 18):
        acme.popleft().release("success")
        await one_loop_turn()
        assert (gate.in_flight, granted.qsize()) == (in_flight_after, 0)
    acme.popleft().release("success")  # 17 in flight: acme's oldest waiter goes in
    await one_loop_turn()
    acme += drained(granted)
    assert (gate.in_flight, gate.in_flight_of("acme"), gate.waiting_of("acme")) == (18, 16, 2)
    await cancel_all(tasks)
    release_all([*acme, *globex, initech], "neutral")
    assert_empty(gate)


async def test_a_limit_of_1_has_no_reserve_and_a_limit_of_2_reserves_one_slot() -> None:
    one = ProviderGate("p", fixed(1))
    (acme,) = await hold(one, "acme", 1)  # a tenant alone takes the whole limit of 1
    assert await one.acquire("globex", max_wait_s=0) is Refusal.PROVIDER_LIMIT
    acme.release("neutral")
    assert_empty(one)
    two = ProviderGate("p", fixed(2))
    (acme,) = await hold(two, "acme", 1)
    assert await two.acquire("acme", max_wait_s=0) is Refusal.PROVIDER_LIMIT
    globex = at_once(two.acquire("globex"))
    assert await two.acquire("initech", max_wait_s=0) is Refusal.PROVIDER_LIMIT
    release_all([acme, globex], "neutral")
    assert_empty(two)


async def room_alone_and_reserved(gate: ProviderGate) -> tuple[int, int]:
    """How many calls one tenant gets alone, then how many more tenants get one each."""
    held: list[Slot] = []
    while isinstance(got := await gate.acquire("alone", max_wait_s=0), Slot):
        held.append(got)
    alone = len(held)
    while isinstance(got := await gate.acquire(f"other-{len(held)}", max_wait_s=0), Slot):
        held.append(got)
    release_all(held, "neutral")
    assert_empty(gate)
    return alone, len(held) - alone


@pytest.mark.parametrize(
    ("limit", "alone", "reserve"),
    [(1, 1, 0), (2, 1, 1), (3, 2, 1), (10, 9, 1), (11, 9, 2), (20, 18, 2), (21, 18, 3)],
)
async def test_the_reserve_is_a_tenth_of_the_limit_rounded_up(
    limit: int, alone: int, reserve: int
) -> None:
    assert (alone, reserve) == (limit - reserve_of(limit), reserve_of(limit))
    gate = ProviderGate("p", fixed(limit))
    assert await room_alone_and_reserved(gate) == (alone, reserve)


async def test_the_reserve_is_as_documented_for_every_limit_up_to_200() -> None:
    for limit in range(1, 201):
        gate = ProviderGate("p", fixed(limit))
        reserve = reserve_of(limit)
        assert await room_alone_and_reserved(gate) == (limit - reserve, reserve), limit


# --- fairness -----------------------------------------------------------------------------


async def test_three_tenants_with_five_times_the_limit_are_granted_in_turns() -> None:
    limit = 10  # a reserve of 1
    gate = ProviderGate("p", fixed(limit))
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    # first come first served would give all of a's calls first: they were all asked first
    tasks = [t for name in "abc" for t in waiters(gate, name, 5 * limit, granted)]
    await one_loop_turn()
    held = deque(drained(granted))
    # a asked first and uses all but the reserve; b, holding nothing, takes the reserve
    assert [s.tenant for s in held] == ["a"] * (limit - 1) + ["b"]
    assert gate.waiting == 15 * limit - limit
    order = []
    in_flight = Counter[int]()
    while gate.waiting:
        held.popleft().release("success")
        await one_loop_turn()
        for slot in drained(granted):
            order.append(slot.tenant)
            held.append(slot)
        in_flight[gate.in_flight] += 1
    # c, holding nothing, takes the first slot freed; then all three hold slots and take
    # turns below the limit less the reserve (the second release grants nothing: the slot
    # it frees is the reserve, and no tenant holding nothing waits for it)
    assert order[0] == "c"
    assert order[1:124] == ["a", "b", "c"] * 41  # a had 41 waiters left, b and c 49 each
    assert order[124:] == ["b", "c"] * 8
    assert in_flight == {10: 1, 9: 140}
    shares = {t: n / 123 for t, n in sorted(Counter(order[1:124]).items())}
    print(f"\nround robin: first grants {''.join(order[:13])}..., shares {shares}")
    assert all(abs(share - 1 / 3) <= 0.1 / 3 for share in shares.values())
    release_all(held, "success")
    await asyncio.gather(*tasks)
    assert_empty(gate)


@pytest.mark.parametrize("noisy_tenants", [1, 3])
async def test_a_tenant_holding_a_slot_waits_behind_one_call_of_each_noisy_tenant(
    noisy_tenants: int,
) -> None:
    """Tenants that all hold slots share the limit less the reserve in turns: the modest
    tenant's next call waits behind one call of each noisy tenant, not their 400 each."""
    limit = 10  # a reserve of 1: 9 for tenants holding slots
    gate = ProviderGate("p", fixed(limit))
    noisy = [f"noisy-{i}" for i in range(noisy_tenants)]
    held = deque(await hold(gate, noisy[0], limit - 1 - noisy_tenants))
    held += await hold_one_each(gate, [*noisy[1:], "modest"])
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    tasks = [t for name in noisy for t in waiters(gate, name, 400, granted)]
    tasks += waiters(gate, "modest", 1, granted)
    await one_loop_turn()
    assert (gate.in_flight, gate.waiting) == (limit - 1, 400 * noisy_tenants + 1)
    before_modest = []
    while True:
        held.popleft().release("success")  # the noisy tenants' calls end first
        await one_loop_turn()
        (slot,) = drained(granted)
        held.append(slot)
        if slot.tenant == "modest":
            break
        before_modest.append(slot.tenant)
    print(f"\nmodest tenant granted after {before_modest} of {400 * noisy_tenants} queued")
    assert before_modest == noisy  # one of each noisy tenant, in turn, then the modest one
    assert gate.in_flight == limit - 1  # the reserve stayed free throughout
    await cancel_all(tasks)
    release_all(held, "neutral")
    assert_empty(gate)


# --- the adaptive limit -------------------------------------------------------------------


async def round_trip(gate: ProviderGate, outcome: Outcome) -> int:
    """Fill the limit with calls, one per tenant (so the reserve is no obstacle), then end
    them all with `outcome`; the limit after."""
    release_all(await hold_one_each(gate, (f"t{i}" for i in range(gate.limit))), outcome)
    return gate.limit


async def test_rising_load_doubles_the_limit_each_round_trip_up_to_max_limit() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20, max_limit=200))
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    tasks = waiters(gate, "t", 500, granted)  # offered load 500: the provider serves it all
    await one_loop_turn()
    in_flight = []
    limits = []
    while gate.in_flight:
        in_flight.append(gate.in_flight)
        release_all(drained(granted), "success")  # one round trip: every call answers
        limits.append(gate.limit)
        await one_loop_turn()
    print(f"\nhealthy provider, 500 offered by one tenant: in flight per round trip {in_flight}")
    # slow start: +1 per success, the tenant alone using the limit less its tenth rounded up
    assert limits[:5] == [38, 72, 136, 200, 200]
    assert in_flight == [18, 34, 64, 122, 180, 82]  # 20-2, 38-4, 72-8, 136-14, 200-20
    assert gate.limit == 200
    assert await round_trip(gate, "success") == 200  # the ceiling holds
    await asyncio.gather(*tasks)
    assert_empty(gate)


async def test_successes_grow_the_limit_only_while_it_binds() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20))
    for _ in range(1000):  # one call at a time says nothing about more
        (await hold(gate, "t", 1))[0].release("success")
    assert gate.limit == 20
    held = await hold(gate, "t", 8)
    for _ in range(100):  # the 9th call finds 9 in flight: below half of 20
        (await hold(gate, "t", 1))[0].release("success")
    assert gate.limit == 20
    held += await hold(gate, "t", 1)
    (await hold(gate, "t", 1))[0].release("success")  # the 10th finds 10: it counts
    assert gate.limit == 21
    release_all(held, "neutral")


async def test_overload_halves_the_limit_once_per_round_trip_down_to_min_limit() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20, min_limit=1))
    # every call of a round trip fails, yet the limit halves once per round trip
    limits = [await round_trip(gate, "overload") for _ in range(6)]
    print(f"\nlimit per all-failing round trip from 20: {limits}")
    assert limits == [10, 5, 2, 1, 1, 1]
    assert gate.snapshot()["decreases_total"] == 5  # 20, 10, 5, 2.5, 1.25: none at 1
    # back up: doubling to the configured start, then about +1 per round trip
    limits = [await round_trip(gate, "success") for _ in range(15)]
    print(f"limit per all-succeeding round trip from 1: {limits}")
    assert limits[:5] == [2, 4, 8, 16, 20]
    assert 28 <= limits[-1] <= 30
    floor = ProviderGate("p", BulkheadPolicy(initial_limit=20, min_limit=4))
    assert [await round_trip(floor, "overload") for _ in range(4)] == [10, 5, 4, 4]


async def test_after_a_decrease_the_limit_grows_by_about_one_per_round_trip() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20, max_limit=200))
    # about doubling each round trip, none waiting (the 500-waiter test doubles exactly)
    assert [await round_trip(gate, "success") for _ in range(4)][-1] == 200
    assert await round_trip(gate, "overload") == 100
    limits = [await round_trip(gate, "success") for _ in range(10)]
    print(f"\nlimit per round trip after halving to 100: {limits}")
    assert 108 <= limits[-1] <= 110
    assert limits == sorted(limits)


async def test_a_neutral_ending_changes_nothing() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20))
    assert [await round_trip(gate, "neutral") for _ in range(3)] == [20, 20, 20]


async def test_a_grown_limit_hands_its_new_slots_to_waiters_at_once() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20, max_wait_s=LONG_WAIT_S))
    held = await hold(gate, "acme", 18)
    held += await hold_one_each(gate, ("globex", "initech"))  # the reserve: 20 of 20
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    tasks = [t for i in range(5) for t in waiters(gate, f"w{i}", 1, granted)]
    await one_loop_turn()
    held.pop(0).release("success")  # slow start: 21, and the released slot is free
    await one_loop_turn()
    assert (gate.limit, gate.in_flight, gate.waiting, granted.qsize()) == (21, 21, 3, 2)
    await cancel_all(tasks)
    release_all([*held, *drained(granted)], "neutral")
    assert_empty(gate)


@pytest.mark.parametrize(
    ("senders", "waves"),
    [
        (1, [18, 9, 4, 1, 1, 1, 1]),  # one tenant alone: each limit less its reserve
        (200, [20, 10, 5, 2, 1, 1, 1]),  # one call per tenant: each whole limit
    ],
)
async def test_a_dead_provider_gets_one_limit_of_calls_before_the_limit_drops(
    senders: int, waves: list[int]
) -> None:
    """200 simultaneous calls against a provider that fails them all.

    Calls admitted before the first failure: `initial_limit` (20), less the reserve when one
    tenant sends them all; no margin at the gate. The next wave goes out as the first one's
    failures come back (the limit is then 10); in the client the breaker, opened by the
    first wave, refuses those."""
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20, max_wait_s=LONG_WAIT_S))
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    tasks = [t for i in range(senders) for t in waiters(gate, f"t{i}", 200 // senders, granted)]
    await one_loop_turn()
    wave = drained(granted)
    assert (len(wave), gate.waiting) == (waves[0], 200 - waves[0])
    wave[0].release("overload")
    assert gate.limit == 10
    admitted_before_the_drop = gate.snapshot()["admitted_total"]
    assert admitted_before_the_drop == waves[0]
    seen = [len(wave)]
    release_all(wave[1:], "overload")  # the rest of the first wave: no further decrease
    assert gate.limit == 10
    for _ in range(6):
        await one_loop_turn()
        wave = drained(granted)
        seen.append(len(wave))
        release_all(wave, "overload")
    print(
        f"\n{senders} sender(s): {admitted_before_the_drop} of 200 sent before the limit "
        f"dropped; calls per wave {seen}, limit now {gate.limit}"
    )
    assert seen == waves
    await cancel_all(tasks)
    assert_empty(gate)


# --- waiting, cancellation, memory --------------------------------------------------------


async def test_a_wait_that_runs_out_is_a_provider_refusal_and_leaves_nothing() -> None:
    gate = ProviderGate("p", fixed(2))
    held = await hold_one_each(gate, ("acme", "globex"))
    refused = await asyncio.gather(
        *(gate.acquire(f"t{i % 3}", max_wait_s=0.001) for i in range(30))
    )
    assert set(refused) == {Refusal.PROVIDER_LIMIT}
    assert gate.waiting == 0 and gate.snapshot()["tenants"] == {
        "acme": {"in_flight": 1, "waiting": 0},
        "globex": {"in_flight": 1, "waiting": 0},
    }
    release_all(held, "neutral")
    assert_empty(gate)


async def test_cancelled_waiters_leave_the_queues_and_leak_no_slot() -> None:
    gate = ProviderGate("p", fixed(5))  # a reserve of 1
    held = [*await hold(gate, "holder", 4), *await hold(gate, "spare", 1)]
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    tasks = [t for name in ("a", "b", "c") for t in waiters(gate, name, 30, granted)]
    await one_loop_turn()
    await cancel_all(tasks[::2])
    assert gate.waiting == 45
    for slot in held:  # the live waiters get the freed slots, but for the reserve
        slot.release("success")
    await one_loop_turn()
    got = drained(granted)
    assert [slot.tenant for slot in got] == ["a", "b", "c", "a"]
    assert (gate.in_flight, gate.waiting) == (4, 41)
    await cancel_all(tasks)
    assert gate.waiting == 0
    release_all(got, "neutral")
    assert_empty(gate)


async def test_a_slot_granted_to_a_task_cancelled_before_it_ran_goes_to_the_next() -> None:
    gate = ProviderGate("p", fixed(1))
    (held,) = await hold(gate, "holder", 1)
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    (first,) = waiters(gate, "x", 1, granted)
    (second,) = waiters(gate, "y", 1, granted)
    await one_loop_turn()
    held.release("success")  # granted to x's waiter ...
    first.cancel()  # ... whose task is cancelled before it could take it
    await asyncio.gather(first, second, return_exceptions=True)
    assert first.cancelled()
    (slot,) = drained(granted)
    assert slot.tenant == "y" and gate.in_flight == 1 and gate.in_flight_of("x") == 0
    slot.release("success")
    assert_empty(gate)


async def test_a_waiter_cancelled_just_before_a_release_is_passed_over() -> None:
    gate = ProviderGate("p", fixed(1))
    (held,) = await hold(gate, "holder", 1)
    granted: asyncio.Queue[Slot] = asyncio.Queue()
    (first,) = waiters(gate, "x", 1, granted)
    (second,) = waiters(gate, "y", 1, granted)
    await one_loop_turn()
    first.cancel()  # its future is cancelled now, its task has not run yet
    held.release("success")
    await asyncio.gather(first, second, return_exceptions=True)
    (slot,) = drained(granted)
    assert slot.tenant == "y" and gate.waiting == 0 and gate.waiting_of("x") == 0
    slot.release("success")
    assert_empty(gate)


def assert_no_waiter_could_take_a_free_slot(gate: ProviderGate, tenants: list[str]) -> None:
    """Every waiting tenant is at its room: the whole limit for a tenant holding nothing,
    the limit less the reserve for one holding slots."""
    limit = gate.limit
    for tenant in tenants:
        if gate.waiting_of(tenant):
            room = limit - reserve_of(limit) if gate.in_flight_of(tenant) else limit
            assert gate.in_flight >= room, (tenant, gate)


@pytest.mark.parametrize("seed", range(10))
async def test_random_interleavings_keep_the_counts_and_leave_nothing(seed: int) -> None:
    """Calls, verdicts and cancellations in random order: the counts always add up, no slot
    stays idle while a call waits that may take it, and nothing is left once everything has
    ended."""
    rnd = random.Random(seed)
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=5, max_limit=30, max_wait_s=0))
    tenants = [f"t{i}" for i in range(6)]
    held: list[Slot] = []
    tasks: list[asyncio.Task[None]] = []

    async def call(tenant: str) -> None:
        got = await gate.acquire(
            tenant, max_wait_s=rnd.choice((0.0, LONG_WAIT_S)), tenant_limit=rnd.choice((None, 8))
        )
        if isinstance(got, Slot):
            held.append(got)

    outcomes: tuple[Outcome, ...] = ("success", "success", "overload", "neutral")
    for _ in range(2000):
        move = rnd.random()
        if move < 0.4:
            tasks.append(asyncio.create_task(call(rnd.choice(tenants))))
        elif move < 0.75 and held:
            held.pop(rnd.randrange(len(held))).release(rnd.choice(outcomes))
        elif move < 0.85 and tasks:
            rnd.choice(tasks).cancel()
        if rnd.random() < 0.5:
            await one_loop_turn()
        assert gate.in_flight == sum(map(gate.in_flight_of, tenants))
        assert gate.waiting == sum(map(gate.waiting_of, tenants))
        assert_no_waiter_could_take_a_free_slot(gate, tenants)
    await cancel_all(tasks)
    release_all(held, "neutral")
    assert_empty(gate)


async def test_a_second_release_does_nothing_and_a_bad_outcome_is_refused() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=20))
    first, second = await hold(gate, "t", 2)
    with pytest.raises(ValueError, match="outcome"):
        first.release("failure")  # type: ignore[arg-type]
    assert gate.in_flight == 2
    for _ in range(3):
        first.release("neutral")
    assert (gate.in_flight, gate.in_flight_of("t")) == (1, 1)
    assert "released" in repr(first) and "held" in repr(second)
    second.release("neutral")
    assert_empty(gate)


async def test_the_hold_time_is_measured_on_the_injected_clock() -> None:
    clock = FakeClock()
    gate = ProviderGate("p", fixed(2), clock=clock)
    assert gate.hold_s is None
    (slot,) = await hold(gate, "t", 1)
    clock.advance(2.0)
    slot.release("success")
    assert gate.hold_s == 2.0 and gate.snapshot()["hold_ms"] == 2000.0


async def test_a_snapshot_lists_the_busiest_tenants_only() -> None:
    gate = ProviderGate("p", BulkheadPolicy(initial_limit=200))
    held = [slot for i in range(150) for slot in await hold(gate, f"t{i:03}", 1 + (i == 7))]
    snapshot = gate.snapshot()
    tenants = snapshot["tenants"]
    assert isinstance(tenants, dict) and len(tenants) == 100 and "t007" in tenants
    assert snapshot["tenants_total"] == 150 and snapshot["in_flight"] == 151
    release_all(held, "neutral")
    assert_empty(gate)


# --- the registry and the policy ----------------------------------------------------------


def test_the_registry_keeps_one_gate_per_provider_with_its_policy() -> None:
    special = BulkheadPolicy(initial_limit=5, max_limit=50)
    bulkheads = Bulkheads(BulkheadPolicy(initial_limit=30), per_provider={"local": special})
    assert bulkheads.gate("openai") is bulkheads.gate("openai")
    assert (bulkheads.gate("openai").limit, bulkheads.gate("local").limit) == (30, 5)
    snapshot = bulkheads.snapshot()
    assert list(snapshot) == ["local", "openai"] and snapshot["local"]["max_limit"] == 50
    assert len(bulkheads) == 2


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_concurrent_per_tenant", 0),
        ("max_concurrent_per_tenant", True),
        ("max_wait_s", -0.1),
        ("max_wait_s", float("nan")),
        ("max_wait_s", float("inf")),
        ("min_limit", 0),
        ("max_limit", 0),
        ("initial_limit", 0),
        ("initial_limit", 201),
        ("initial_limit", 2.5),
    ],
)
def test_a_bad_policy_value_is_refused_naming_its_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        BulkheadPolicy(**{field: value})  # type: ignore[arg-type]


def test_max_limit_below_min_limit_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^max_limit: "):
        BulkheadPolicy(min_limit=10, initial_limit=10, max_limit=5)


async def test_a_bad_tenant_limit_is_refused() -> None:
    gate = ProviderGate("p", BulkheadPolicy())
    with pytest.raises(ValueError, match=r"^tenant_limit: "):
        await gate.acquire("t", tenant_limit=0)
