"""Routes: ordered chains of `provider:model` targets that a call walks until one answers.

Target.parse("local:llama3.1:8b")   # Target(provider='local', model='llama3.1:8b')
Route.of("chat", "anthropic:claude-sonnet-4-6", "openai:gpt-4.1")
# Route('chat': anthropic:claude-sonnet-4-6 -> openai:gpt-4.1)
Route.of("chat", Group.of("openai-a:gpt-4.1", "openai-b:gpt-4.1", strategy="round_robin"),
         "anthropic:claude-sonnet-4-6")
# Route('chat': round_robin[openai-a:gpt-4.1, openai-b:gpt-4.1] -> anthropic:claude-sonnet-4-6)

A step of a route is a `Target` or a `Group` of equivalent targets (several keys of one
provider, several regions, several replicas): the group's strategy picks the order its
members are tried in, and the route moves to the next step only when the whole group failed.
"""

from __future__ import annotations

import enum
import math
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias

from resilience.models import model_name_problem, shown
from resilience.types import ProviderName

PROVIDER_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""Provider names as the config allows them (which also asks for a letter or digit first)."""


@dataclass(frozen=True, slots=True)
class Target:
    """One provider and one of its models; `str()` gives back `provider:model`."""

    provider: ProviderName
    model: str

    def __post_init__(self) -> None:
        # The checks keep `Target.parse(str(t)) == t`: a ':' or blank in the provider, or
        # padding around the model, would come back different.
        if not self.provider or ":" in self.provider or self.provider.strip() != self.provider:
            raise ValueError(
                f"target provider {self.provider!r}: expected provider:model, "
                "the provider non-empty, without ':' or surrounding spaces"
            )
        if not self.model or self.model.strip() != self.model:
            raise ValueError(
                f"target model {self.model!r}: expected provider:model, "
                "the model non-empty, without surrounding spaces"
            )
        # Both parts key breakers, health figures and metrics and are echoed in response
        # headers: what cannot be a real name is refused before anything is made for it.
        if not PROVIDER_NAME.fullmatch(self.provider):
            raise ValueError(
                f"target provider '{shown(self.provider)}': expected provider:model, the "
                "provider 1 to 64 letters, digits and . - _"
            )
        problem = model_name_problem(self.model)
        if problem is not None:
            raise ValueError(
                f"target model '{shown(self.model)}': expected provider:model; the model: {problem}"
            )

    @classmethod
    def parse(cls, text: str) -> Target:
        """`"anthropic:claude-sonnet-4-6"`; splits on the first ':' since models may hold one."""
        provider, sep, model = text.partition(":")
        provider, model = provider.strip(), model.strip()
        if not sep or not provider or not model:
            raise ValueError(f"target {text!r}: expected provider:model")
        return cls(provider, model)

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


class Strategy(enum.StrEnum):
    """How a group orders its members for one call (`resilience.routing.strategies`)."""

    PRIORITY = "priority"
    """In the order written: the first healthy member takes every call."""
    ROUND_ROBIN = "round_robin"
    """Each call starts one member further along."""
    WEIGHTED = "weighted"
    """The first member drawn at random in proportion to `weights`."""
    LEAST_LATENCY = "least_latency"
    """Lowest recent latency first (EWMA), with periodic exploration of the others."""
    LEAST_BUSY = "least_busy"
    """Fewest calls in flight first."""
    HASH = "hash"
    """Stable per tenant (rendezvous hashing), for provider-side prompt caches."""


@dataclass(frozen=True, slots=True)
class Group:
    """Equivalent targets tried as one step of a route, in the order `strategy` picks."""

    members: tuple[Target, ...]
    strategy: Strategy = Strategy.PRIORITY
    weights: tuple[float, ...] | None = None
    """Only for `weighted`: one positive weight per member."""
    label: str = field(init=False, repr=False, compare=False)
    """`str(group)`, computed once: names the group in outcomes and retry budgets."""

    def __post_init__(self) -> None:
        if not isinstance(self.members, tuple) or not self.members:
            raise ValueError("group members: expected a non-empty tuple of Target")
        for member in self.members:
            if not isinstance(member, Target):
                raise TypeError(f"group members: expected Target, got {member!r}")
        if len(set(self.members)) != len(self.members):
            raise ValueError(f"group members: {', '.join(map(str, self.members))} repeat a target")
        strategy = Strategy(self.strategy)  # a plain string is accepted, and checked here
        object.__setattr__(self, "strategy", strategy)
        if strategy is Strategy.WEIGHTED:
            weights = self.weights
            if weights is None or len(weights) != len(self.members):
                raise ValueError(
                    f"group weights: weighted needs one weight per member "
                    f"({len(self.members)}), got {weights!r}"
                )
            if not all(isinstance(w, int | float) and math.isfinite(w) and w > 0 for w in weights):
                raise ValueError(f"group weights: each must be finite and > 0, got {weights!r}")
            object.__setattr__(self, "weights", tuple(float(w) for w in weights))
        elif self.weights is not None:
            raise ValueError(f"group weights: only for strategy 'weighted', not {strategy.value!r}")
        label = f"{strategy.value}[{', '.join(map(str, self.members))}]"
        object.__setattr__(self, "label", label)

    @classmethod
    def of(
        cls,
        *members: str | Target,
        strategy: Strategy | str = Strategy.PRIORITY,
        weights: Sequence[float] | None = None,
    ) -> Group:
        """`Group.of("openai-a:gpt-4.1", "openai-b:gpt-4.1", strategy="round_robin")`."""
        parsed = tuple(m if isinstance(m, Target) else Target.parse(m) for m in members)
        return cls(parsed, Strategy(strategy), tuple(weights) if weights is not None else None)

    def __str__(self) -> str:
        return self.label


Step: TypeAlias = Target | Group
"""One step of a route: a single target, or a group of equivalent ones."""


@dataclass(frozen=True, slots=True)
class Route:
    """A named, non-empty, ordered chain of steps, tried first to last."""

    name: str
    targets: tuple[Step, ...]

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("route name: must be non-empty")
        if not isinstance(self.targets, tuple):
            raise TypeError(f"route {self.name!r}: targets must be a tuple of Target")
        if not self.targets:
            raise ValueError(f"route {self.name!r}: needs at least one target")
        for step in self.targets:
            if not isinstance(step, Target | Group):
                raise TypeError(f"route {self.name!r}: expected Target or Group, got {step!r}")

    @classmethod
    def of(cls, name: str, *targets: str | Step) -> Route:
        """`Route.of("chat", "openai:gpt-4.1", "anthropic:claude-sonnet-4-6")`."""
        parsed = tuple(Target.parse(t) if isinstance(t, str) else t for t in targets)
        return cls(name, parsed)

    def iter_targets(self) -> Iterator[Target]:
        """Every target in order, group members in the order written."""
        for step in self.targets:
            if isinstance(step, Group):
                yield from step.members
            else:
                yield step

    @property
    def providers(self) -> frozenset[ProviderName]:
        """The providers this route may call."""
        return frozenset(t.provider for t in self.iter_targets())

    def __repr__(self) -> str:
        return f"Route({self.name!r}: {' -> '.join(map(str, self.targets))})"
