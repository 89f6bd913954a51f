"""What the two crossing directions share: `CannotCarry`, and the checks that decide
whether a field's value can cross (`refuse`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from typing import Any


class CannotCarry(ValueError):
    """A request field the target's API has no counterpart for: `str()` is "<field>: <why>"."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")
        self.field = field
        self.why = why

    def __reduce__(self) -> tuple[type[CannotCarry], tuple[str, str]]:
        return type(self), (self.field, self.why)


Check = Callable[[Any], bool]
"""Whether a field's value asks for nothing the target lacks (so nothing is lost)."""


def never(value: Any) -> bool:
    return False


def zero(value: Any) -> bool:
    return value == 0 and not isinstance(value, bool)


def false(value: Any) -> bool:
    return value is False


def empty(value: Any) -> bool:
    return value in ({}, [])


_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def named(value: Any) -> str:
    """A block or tool type as a path segment; "type" when it cannot be one."""
    return value if isinstance(value, str) and _NAME.fullmatch(value) else "type"


@dataclasses.dataclass(frozen=True, slots=True)
class Target:
    """The API a request crosses to, and why each field it lacks cannot go there."""

    api: str
    whys: Mapping[str, str]

    def why(self, key: str) -> str:
        return self.whys.get(key, f"no counterpart in {self.api}")


def refuse(
    fields: Mapping[str, Any], allowed: Mapping[str, Check | None], where: str, to: Target
) -> None:
    """CannotCarry for the first key of `fields` that is not null and not allowed as given
    (None in `allowed`: any value; a check: the values it accepts)."""
    for key, value in fields.items():
        if value is None:
            continue
        if key in allowed:
            check = allowed[key]
            if check is None or check(value):
                continue
        raise CannotCarry(f"{where}{key}", to.why(key))


def items(value: Any) -> list[Mapping[str, Any]]:
    """The objects of a list field (others are wire's to name)."""
    return [v for v in value if isinstance(v, Mapping)] if isinstance(value, list) else []
