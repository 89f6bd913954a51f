"""The order in which a group's members are tried for one call, by the group's strategy.

`Balancer.order(group, tenant)` returns every member once. The client tries them in that
order, skipping members whose breaker is open or whose rate limit is spent, so a strategy
only decides who goes first and who takes over; health and limits stay the breakers' job.

- `priority`: as written.
- `round_robin`: each call starts at the member after the one that answered the previous
  call (over all tenants), so a skipped member's turns are shared by the others evenly.
- `weighted`: the first member drawn in proportion to its weight; the rest by weight.
- `least_latency`: by `ewma_s` (members never measured first, so new ones get sampled).
  Every `EXPLORE_EVERY`th call of the group puts the next member in turn first instead, so
  a member that was slow is measured again and wins traffic back once it has recovered.
- `least_busy`: by calls in flight; ties go round robin so equal members share the load.
- `hash`: rendezvous hashing of the tenant id: each tenant has a stable order (its first
  member keeps a provider-side prompt cache warm), and removing a member moves only
  the tenants that had it first.
"""

from __future__ import annotations

import bisect
import hashlib
import random
from collections.abc import Sequence
from itertools import accumulate

from resilience.routing.health import HealthBoard, MemberHealth
from resilience.routing.routes import Group, Strategy, Target
from resilience.types import TenantId

EXPLORE_EVERY = 20
"""`least_latency` sends one call in this many to a member other than the fastest."""
_HASH_CACHE = 10_000


class _Plan:
    """Per-group state, built once: members, their health records, counters."""

    __slots__ = (
        "by_weight",
        "calls",
        "cumulative",
        "group",
        "health",
        "index",
        "members",
        "orders",
        "seeds",
    )

    def __init__(self, group: Group, board: HealthBoard) -> None:
        self.group = group  # keeps the group alive, so its id() is not reused
        self.members: tuple[Target, ...] = group.members
        # pinned: a board that evicted one would leave this plan reading a stale entry
        self.health: tuple[MemberHealth, ...] = tuple(board.pin(m) for m in group.members)
        self.calls = 0
        self.index = {m: i for i, m in enumerate(group.members)}
        weights = group.weights or tuple(1.0 for _ in group.members)
        self.cumulative = list(accumulate(weights))
        self.by_weight = sorted(
            range(len(group.members)), key=lambda i: (-weights[i], i)
        )  # heaviest first, ties as written
        self.seeds = tuple(str(m).encode() for m in group.members)
        self.orders: dict[TenantId, tuple[Target, ...]] = {}


class Balancer:
    """Orders group members per call; one per client, used from one event loop."""

    def __init__(self, health: HealthBoard, *, rng: random.Random | None = None) -> None:
        self.health = health
        self._rng = rng or random.Random()
        self._plans: dict[int, _Plan] = {}

    def order(self, group: Group, tenant: TenantId) -> Sequence[Target]:
        plan = self._plans.get(id(group))
        if plan is None or plan.group is not group:
            plan = self._plans[id(group)] = _Plan(group, self.health)
        strategy = group.strategy
        if strategy is Strategy.PRIORITY:
            return plan.members
        plan.calls += 1
        if strategy is Strategy.ROUND_ROBIN:
            start = plan.calls % len(plan.members)
            return plan.members[start:] + plan.members[:start]
        if strategy is Strategy.LEAST_LATENCY:
            return _least_latency(plan)
        if strategy is Strategy.LEAST_BUSY:
            return _least_busy(plan)
        if strategy is Strategy.WEIGHTED:
            return self._weighted(plan)
        return _hashed(plan, tenant)

    def answered(self, group: Group, target: Target) -> None:
        """`target` took the call: a round robin continues after it."""
        if group.strategy is Strategy.ROUND_ROBIN:
            plan = self._plans.get(id(group))
            if plan is not None and plan.group is group:
                plan.calls = plan.index[target]  # `order` adds one: the next member
                # (a call already under way may have advanced it; the latest answer wins)

    def _weighted(self, plan: _Plan) -> list[Target]:
        cumulative = plan.cumulative
        first = bisect.bisect_right(cumulative, self._rng.random() * cumulative[-1])
        first = min(first, len(cumulative) - 1)  # guards the float edge of random() * total
        members = plan.members
        return [members[first], *(members[i] for i in plan.by_weight if i != first)]


def _least_latency(plan: _Plan) -> list[Target]:
    health = plan.health
    n = len(health)
    ranked = sorted(range(n), key=lambda i: health[i].ewma_s or 0.0)
    if plan.calls % EXPLORE_EVERY == 0 and n > 1:
        # The explored member takes turns among all but the current fastest.
        turn = ranked[1 + (plan.calls // EXPLORE_EVERY) % (n - 1)]
        ranked.remove(turn)
        ranked.insert(0, turn)
    members = plan.members
    return [members[i] for i in ranked]


def _least_busy(plan: _Plan) -> list[Target]:
    health = plan.health
    n = len(health)
    start = plan.calls % n
    rotated = [*range(start, n), *range(start)]
    rotated.sort(key=lambda i: health[i].in_flight)  # stable: ties keep the rotation
    members = plan.members
    return [members[i] for i in rotated]


def _hashed(plan: _Plan, tenant: TenantId) -> tuple[Target, ...]:
    found = plan.orders.get(tenant)
    if found is None:
        key = tenant.encode() + b"\0"
        scores = [hashlib.blake2b(key + seed, digest_size=8).digest() for seed in plan.seeds]
        ranked = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
        found = tuple(plan.members[i] for i in ranked)
        if len(plan.orders) >= _HASH_CACHE:
            plan.orders.clear()
        plan.orders[tenant] = found
    return found
