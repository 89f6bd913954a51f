"""Routes: ordered chains of `provider:model` targets that a call walks until one answers.

Target.parse("local:llama3.1:8b")   # Target(provider='local', model='llama3.1:8b')
Route.of("chat", "anthropic:claude-sonnet-4-6", "openai:gpt-4.1")
# Route('chat': anthropic:claude-sonnet-4-6 -> openai:gpt-4.1)
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeAlias

from resilience.types import ProviderName


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


Step: TypeAlias = Target
"""One step of a route. Only a single target today; a group of equivalent targets tried as
one step is planned, and will widen this alias rather than change `Route.targets`."""


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
            if not isinstance(step, Target):
                raise TypeError(f"route {self.name!r}: expected Target steps, got {step!r}")

    @classmethod
    def of(cls, name: str, *targets: str | Target) -> Route:
        """`Route.of("chat", "openai:gpt-4.1", "anthropic:claude-sonnet-4-6")`."""
        parsed = tuple(t if isinstance(t, Target) else Target.parse(t) for t in targets)
        return cls(name, parsed)

    def iter_targets(self) -> Iterator[Target]:
        """Every target in order, whatever the step shape (the planned groups included)."""
        return iter(self.targets)

    @property
    def providers(self) -> frozenset[ProviderName]:
        """The providers this route may call."""
        return frozenset(t.provider for t in self.iter_targets())

    def __repr__(self) -> str:
        return f"Route({self.name!r}: {' -> '.join(map(str, self.targets))})"
