"""pyproject.toml, the tested pins (constraints.txt) and the floors (constraints-floor.txt) agree.

scripts/test-floors installs constraints-floor.txt and runs the unit and client tests on it;
that only proves the claimed floors if every floor has its line there, at exactly the version
pyproject.toml names. The pins the rest of CI runs on must satisfy every requirement too.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
FLOORED_EXTRAS = ("gateway", "postgres", "redis", "otel", "test")
"""What scripts/test-floors installs; `dev` adds only the lint, type and browser tools."""


def _requirements(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        found += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return [r for r in found if canonicalize_name(r.name) != canonicalize_name(project["name"])]


def _pins(name: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in (ROOT / name).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            package, version = line.split("==")
            pins[canonicalize_name(package)] = Version(version)
    return pins


def _floor(requirement: Requirement) -> Version:
    (floor,) = [s for s in requirement.specifier if s.operator == ">="]
    return Version(floor.version)


def test_every_requirement_claims_one_floor() -> None:
    for requirement in _requirements(*FLOORED_EXTRAS, "dev"):
        assert [s.operator for s in requirement.specifier] == [">="], str(requirement)


def test_the_floor_file_pins_each_floor_exactly() -> None:
    floors = _pins("constraints-floor.txt")
    claimed = {canonicalize_name(r.name): _floor(r) for r in _requirements(*FLOORED_EXTRAS)}
    assert floors == claimed


def test_the_tested_pins_satisfy_every_requirement() -> None:
    pins = _pins("constraints.txt")
    for requirement in _requirements(*FLOORED_EXTRAS, "dev"):
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{name} has no pin in constraints.txt"
        assert requirement.specifier.contains(pins[name]), f"{name}=={pins[name]}: {requirement}"
