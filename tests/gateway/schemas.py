"""The official OpenAI component schemas (tests/gateway/specs/, with its provenance), as
JSON Schema 2020-12 validators."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import jsonschema_rs

SPEC = Path(__file__).parent / "specs" / "openai-openapi-subset.json"


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's `"nullable": true`, which JSON Schema ignores, as `anyOf [..., null]`."""
    if isinstance(schema, list):
        return [_nullable(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    inner = {k: _nullable(v) for k, v in schema.items() if k != "nullable"}
    if schema.get("nullable") is True:
        return {"anyOf": [inner, {"type": "null"}]}
    return inner


@functools.cache
def _components() -> dict[str, Any]:
    components: dict[str, Any] = json.loads(SPEC.read_text())["components"]
    schemas = {name: _nullable(s) for name, s in components["schemas"].items()}
    return {**components, "schemas": schemas}


@functools.cache
def validator(name: str) -> jsonschema_rs.Draft202012Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": _components()}
    return jsonschema_rs.Draft202012Validator(schema)


def problems(name: str, instance: Any) -> list[str]:
    """Why `instance` is not a valid `name`, one line per error; empty when it is."""
    return [
        f"{'/'.join(map(str, e.instance_path)) or '<root>'}: {e.message}"
        for e in validator(name).iter_errors(instance)
    ]


def assert_valid(name: str, instance: Any) -> None:
    found = problems(name, instance)
    assert not found, f"not a valid {name}: {found}\n{json.dumps(instance)[:2000]}"
