"""A deterministic JSON instance of a JSON Schema: what a structured answer or a tool call holds.

Clients parse these answers with the schema they sent (pydantic models in
`chat.completions.parse`, instructor, tool arguments), so the instance must validate. It is
the plainest valid value, not a random one: strings are "ok", numbers 0, booleans true,
arrays one item, objects every property; each bent as far as the schema's own constraints
(`enum`, `const`, `minimum`, `minLength`, `minItems`, `format`, ...) require. `$ref` follows
local pointers (`#/$defs/X`, `#/definitions/X`); `anyOf` / `oneOf` take the first branch,
`allOf` merges its branches. A recursive schema stops at a depth where only required
properties and the fewest items are kept (and a null branch is taken when there is one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

_DEEP = 6
"""From this depth on, only what the schema requires: recursive schemas end."""
_GIVE_UP = 64

_FORMATS = {
    "date-time": "2024-01-01T00:00:00Z",
    "date": "2024-01-01",
    "time": "00:00:00Z",
    "duration": "PT0S",
    "email": "ok@example.com",
    "idn-email": "ok@example.com",
    "uri": "https://example.com/",
    "url": "https://example.com/",
    "iri": "https://example.com/",
    "uri-reference": "https://example.com/",
    "hostname": "example.com",
    "ipv4": "127.0.0.1",
    "ipv6": "::1",
    "uuid": "00000000-0000-4000-8000-000000000000",
}
"""Strings that parse as each `format` (pydantic's datetime, UUID, HttpUrl, ... fields)."""


def instance(schema: Any) -> Any:
    """The plainest value valid against `schema` (a JSON Schema as parsed JSON)."""
    return _Walk(schema if isinstance(schema, Mapping) else {}).value(schema, 0)


class _Walk:
    """One walk over a schema; `root` is where `$ref` pointers resolve."""

    def __init__(self, root: Mapping[str, Any]) -> None:
        self.root = root

    def value(self, schema: Any, depth: int) -> Any:
        if depth > _GIVE_UP:
            return None  # a schema that requires itself: it has no finite instance
        if schema is True or not isinstance(schema, Mapping):
            return "ok"
        if "$ref" in schema:
            return self.value(self.resolve(schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return enum[0]
        if "allOf" in schema:
            return self.all_of(schema, depth)
        for key in ("anyOf", "oneOf"):
            branches = schema.get(key)
            if isinstance(branches, list) and branches:
                return self.value(self.pick(branches, depth), depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = "null" if depth >= _DEEP and "null" in kind else next(iter(kind), None)
        if kind is None:
            kind = _implied_type(schema)
        make = getattr(self, f"_{kind}", None)
        return make(schema, depth) if make else "ok"

    def resolve(self, ref: Any) -> Any:
        """A local `#/...` pointer into the root schema; anything else is any value."""
        if not isinstance(ref, str) or not ref.startswith("#"):
            return {}
        node: Any = self.root
        for part in filter(None, ref[1:].split("/")):
            key = part.replace("~1", "/").replace("~0", "~")
            if isinstance(node, Mapping) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                return {}
        return node

    def pick(self, branches: list[Any], depth: int) -> Any:
        """The first branch, or deep in a recursive schema the null one that ends it."""
        if depth >= _DEEP:
            for branch in branches:
                if isinstance(branch, Mapping) and branch.get("type") == "null":
                    return branch
        return branches[0]

    def all_of(self, schema: Mapping[str, Any], depth: int) -> Any:
        rest = {k: v for k, v in schema.items() if k != "allOf"}
        parts = [self.value(b, depth + 1) for b in schema["allOf"]]
        if rest:
            parts.append(self.value(rest, depth))
        objects = [p for p in parts if isinstance(p, dict)]
        if objects and len(objects) == len(parts):
            merged: dict[str, Any] = {}
            for part in objects:
                merged.update(part)
            return merged
        return parts[0] if parts else "ok"

    # -- one method per JSON type -------------------------------------------------------

    def _object(self, schema: Mapping[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        if not isinstance(properties, Mapping):
            properties = {}
        required = schema.get("required")
        needed = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        value = {
            name: self.value(sub, depth + 1)
            for name, sub in properties.items()
            if depth < _DEEP or name in needed
        }
        extra = schema.get("additionalProperties", {})
        for name in needed:
            if name not in value:
                value[name] = self.value(extra, depth + 1)
        return value

    def _array(self, schema: Mapping[str, Any], depth: int) -> list[Any]:
        prefix = schema.get("prefixItems", schema.get("items"))
        if isinstance(prefix, list):  # a tuple (draft 4 spelled it as a list of `items`)
            return [self.value(item, depth + 1) for item in prefix]
        least = _int(schema.get("minItems"), 0)
        most = _int(schema.get("maxItems"), least + 1)
        count = least if depth >= _DEEP else min(max(1, least), most)
        return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]

    def _string(self, schema: Mapping[str, Any], depth: int) -> str:
        text = _FORMATS.get(str(schema.get("format")), "ok")
        least = _int(schema.get("minLength"), 0)
        if len(text) < least:
            text += "k" * (least - len(text))
        most = schema.get("maxLength")
        return text[:most] if isinstance(most, int) and most >= 0 else text

    def _integer(self, schema: Mapping[str, Any], depth: int) -> int:
        return math.ceil(_number_in(schema))

    def _number(self, schema: Mapping[str, Any], depth: int) -> float | int:
        return _number_in(schema)

    def _boolean(self, schema: Mapping[str, Any], depth: int) -> bool:
        return True

    def _null(self, schema: Mapping[str, Any], depth: int) -> None:
        return None


def _implied_type(schema: Mapping[str, Any]) -> str | None:
    """The type a schema without `type` describes by its keywords, if any."""
    if "properties" in schema or "additionalProperties" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _number_in(schema: Mapping[str, Any]) -> float | int:
    """0, or the nearest value the bounds allow (a multiple of `multipleOf` where it can)."""
    low, low_open = _bound(schema, "minimum", "exclusiveMinimum")
    high, high_open = _bound(schema, "maximum", "exclusiveMaximum")
    value: float | int = 0
    if low is not None and not _inside(value, low, low_open, above=True):
        value = low + 1 if low_open else low
    if high is not None and not _inside(value, high, high_open, above=False):
        value = high - 1 if high_open else high
        if low is not None and not _inside(value, low, low_open, above=True):
            value = (low + high) / 2  # a range narrower than 1: its middle
    multiple = schema.get("multipleOf")
    if isinstance(multiple, int | float) and multiple > 0 and value % multiple:
        value = (value // multiple + 1) * multiple
    return value


def _inside(value: float, bound: float, exclusive: bool, *, above: bool) -> bool:
    if value == bound:
        return not exclusive
    return value > bound if above else value < bound


def _bound(schema: Mapping[str, Any], closed: str, opened: str) -> tuple[float | None, bool]:
    """A bound and whether it is exclusive, in draft 2020-12 or draft 4 spelling."""
    plain, exclusive = _numeric(schema.get(closed)), schema.get(opened)
    if isinstance(exclusive, bool):  # draft 4: a flag on the plain bound
        return plain, exclusive and plain is not None
    number = _numeric(exclusive)
    if number is not None and (plain is None or number >= plain):
        return number, True
    return plain, False


def _numeric(value: Any) -> float | None:
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    return value if is_number else None
