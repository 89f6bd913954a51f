"""Routes: ordered chains of `provider:model` targets that a call walks until one answers."""

from __future__ import annotations

from dataclasses import dataclass

from resilience.types import ProviderName


@dataclass(frozen=True, slots=True)
class Target:
    """One provider and one of its models."""

    provider: ProviderName
    model: str

    def __post_init__(self) -> None:
        if not self.provider or not self.model:
            raise ValueError(f"target {self}: expected provider:model, both non-empty")

    @classmethod
    def parse(cls, text: str) -> Target:
        """`"anthropic:claude-sonnet-4-6"`; splits on the first ':' since models may hold one."""
        provider, sep, model = text.partition(":")
        if not sep or not provider or not model:
            raise ValueError(f"target {text!r}: expected provider:model")
        return cls(provider.strip(), model.strip())

    def __str__(self) -> str:
        return f"{self.provider}:{self.model}"


@dataclass(frozen=True, slots=True)
class Route:
    """A named, non-empty, ordered chain of targets."""

    name: str
    targets: tuple[Target, ...]

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError(f"route {self.name!r}: needs at least one target")

    @classmethod
    def of(cls, name: str, *targets: str | Target) -> Route:
        """`Route.of("chat", "openai:gpt-4.1", "anthropic:claude-sonnet-4-6")`."""
        parsed = tuple(t if isinstance(t, Target) else Target.parse(t) for t in targets)
        return cls(name, parsed)

    def __repr__(self) -> str:
        return f"Route({self.name!r}: {' -> '.join(map(str, self.targets))})"
