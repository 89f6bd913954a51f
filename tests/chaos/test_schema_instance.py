"""The instance generator: the plainest value valid against a schema, as clients validate it."""

from __future__ import annotations

import datetime
import enum
import uuid
from typing import Any, Literal

import jsonschema_rs
import pytest
from openai.lib._pydantic import to_strict_json_schema
from pydantic import BaseModel, Field, HttpUrl

from resilience.chaos.schema_instance import instance


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Node(BaseModel):
    name: str
    children: list[Node] = []


class Cat(BaseModel):
    kind: Literal["cat"]
    lives: int = Field(ge=1, le=9)


class Dog(BaseModel):
    kind: Literal["dog"]
    good: bool


class Everything(BaseModel):
    """A model using what pydantic users put in `response_format` models."""

    when: datetime.datetime
    day: datetime.date
    id: uuid.UUID
    url: HttpUrl
    color: Color
    score: float = Field(gt=0, lt=1)
    count: int = Field(gt=3, multiple_of=5)
    tags: list[str] = Field(min_length=2)
    maybe: int | None = None
    pet: Cat | Dog = Field(discriminator="kind")
    tree: Node
    pair: tuple[int, str]
    code: str = Field(min_length=5, max_length=6)
    extra: dict[str, int] = {}


@pytest.mark.parametrize("strict", [False, True], ids=["pydantic", "openai-strict"])
def test_a_pydantic_models_schema_gets_an_instance_the_model_accepts(strict: bool) -> None:
    schema = to_strict_json_schema(Everything) if strict else Everything.model_json_schema()
    value = instance(schema)
    jsonschema_rs.validate(schema, value)
    parsed = Everything.model_validate(value)
    assert (parsed.color, parsed.pet, parsed.code) == (Color.RED, Cat(kind="cat", lives=1), "okkkk")
    assert 0 < parsed.score < 1 and parsed.count == 5 and parsed.tags == ["ok", "ok"]


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "ok"),
        ({"type": "string", "enum": ["b", "a"]}, "b"),
        ({"const": 7}, 7),
        ({"type": "string", "minLength": 4}, "okkk"),
        ({"type": "string", "maxLength": 1}, "o"),
        ({"type": "string", "format": "date-time"}, "2024-01-01T00:00:00Z"),
        ({"type": "integer"}, 0),
        ({"type": "integer", "minimum": 3}, 3),
        ({"type": "integer", "maximum": -2}, -2),
        ({"type": "integer", "exclusiveMinimum": 0}, 1),
        (
            {
                "$schema": "http://json-schema.org/draft-04/schema#",
                "type": "integer",
                "minimum": 0,
                "exclusiveMinimum": True,
            },
            1,
        ),
        ({"type": "number", "minimum": 0.5}, 0.5),
        ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, 0.5),
        ({"type": "integer", "minimum": 1, "multipleOf": 4}, 4),
        ({"type": "boolean"}, True),
        ({"type": "null"}, None),
        ({"type": ["integer", "null"]}, 0),
        ({"type": "array", "items": {"type": "integer"}}, [0]),
        ({"type": "array", "items": {"type": "boolean"}, "minItems": 3}, [True] * 3),
        ({"type": "array", "items": {"type": "string"}, "maxItems": 0}, []),
        ({"type": "array", "prefixItems": [{"type": "integer"}, {"const": "x"}]}, [0, "x"]),
        ({"anyOf": [{"type": "integer"}, {"type": "string"}]}, 0),
        ({"oneOf": [{"type": "string"}, {"type": "integer"}]}, "ok"),
        (
            {"allOf": [{"properties": {"a": {"type": "integer"}}}, {"properties": {"b": {}}}]},
            {"a": 0, "b": "ok"},
        ),
        ({"$defs": {"A": {"type": "integer", "minimum": 2}}, "$ref": "#/$defs/A"}, 2),
        ({"definitions": {"A": {"const": "d"}}, "$ref": "#/definitions/A"}, "d"),
        ({"type": "object", "required": ["x"]}, {"x": "ok"}),
        ({"type": "object", "properties": {"a": {"type": "boolean"}}}, {"a": True}),
        ({}, "ok"),
    ],
)
def test_each_keyword_bends_the_plain_value_as_far_as_it_must(
    schema: dict[str, Any], expected: Any
) -> None:
    value = instance(schema)
    assert value == expected and type(value) is type(expected)
    jsonschema_rs.validate(schema, value)


def test_a_recursive_schema_ends_and_is_valid() -> None:
    schema = Node.model_json_schema()
    value = instance(schema)
    jsonschema_rs.validate(schema, value)
    assert Node.model_validate(value).name == "ok"
    linked = {
        "$defs": {"L": {"type": "object", "properties": {"next": {"$ref": "#/$defs/L"}}}},
        "$ref": "#/$defs/L",
    }
    jsonschema_rs.validate(linked, instance(linked))
    nullable = {
        "$defs": {
            "L": {
                "type": "object",
                "properties": {"next": {"anyOf": [{"$ref": "#/$defs/L"}, {"type": "null"}]}},
                "required": ["next"],
            }
        },
        "$ref": "#/$defs/L",
    }
    jsonschema_rs.validate(nullable, instance(nullable))


def test_the_instance_is_the_same_every_time() -> None:
    schema = Everything.model_json_schema()
    assert instance(schema) == instance(schema)


@pytest.mark.parametrize("schema", [None, "text", {"$ref": "https://elsewhere/s.json"}])
def test_what_is_not_a_schema_gets_a_value_without_raising(schema: Any) -> None:
    assert instance(schema) == "ok"
