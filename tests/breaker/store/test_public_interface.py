"""Stores use the breaker's public interface, never its private fields.

The rules of the breaker are written once, in `resilience/breaker/machine.py`; a store that
read or wrote `CircuitBreaker`'s underscore attributes would hold a second copy of them,
free to drift (docs/architecture.md, "Shared store"). A small AST walk over
`resilience/breaker/store/` fails on any use of a private name `CircuitBreaker` defines
(its `__slots__`, its `self._x` assignments, its private methods), whatever the receiver:
`breaker._state`, `super()._roll(now)`, `self._generation` in a subclass. A store's own
attribute that happens to share a name (`MemoryStore._clock`) is allowed only as `self._x`
in a class that is not a breaker.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "resilience"
MACHINE = PACKAGE / "breaker" / "machine.py"
STORE = PACKAGE / "breaker" / "store"
BREAKER = "CircuitBreaker"
_ATTRIBUTE_CALLS = frozenset({"getattr", "setattr", "delattr", "hasattr"})


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_names(source: str, cls: str = BREAKER) -> frozenset[str]:
    """The underscore attributes class `cls` defines: its slots, what its methods assign on
    `self`, its private methods and class attributes."""
    tree = ast.parse(source)
    found: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.ClassDef) and node.name == cls):
            continue
        for item in node.body:
            if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                found.add(item.name)
            elif isinstance(item, ast.Assign | ast.AnnAssign):
                targets = item.targets if isinstance(item, ast.Assign) else [item.target]
                for target in targets:
                    if isinstance(target, ast.Name) and target.id == "__slots__":
                        found.update(_strings(item.value))
                    elif isinstance(target, ast.Name):
                        found.add(target.id)
        for inner in ast.walk(node):
            if isinstance(inner, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = inner.targets if isinstance(inner, ast.Assign) else [inner.target]
                for target in targets:
                    for part in ast.walk(target):
                        if _on_self(part):
                            assert isinstance(part, ast.Attribute)
                            found.add(part.attr)
    return frozenset(name for name in found if _private(name))


def _strings(value: ast.expr | None) -> Iterator[str]:
    if isinstance(value, ast.Tuple | ast.List | ast.Set):
        for element in value.elts:
            if isinstance(element, ast.Constant) and isinstance(element.value, str):
                yield element.value


def _on_self(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "self"
    )


def breaker_classes(trees: list[ast.Module]) -> set[str]:
    """Classes in the scanned files that are `CircuitBreaker`s (directly or through another)."""
    bases = {
        node.name: {_base_name(base) for base in node.bases}
        for tree in trees
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
    }
    found = {BREAKER}
    while True:
        more = {name for name, of in bases.items() if of & found} - found
        if not more:
            return found - {BREAKER}
        found |= more


def _base_name(base: ast.expr) -> str:
    if isinstance(base, ast.Attribute):
        return base.attr
    return base.id if isinstance(base, ast.Name) else ""


def uses(tree: ast.Module, names: frozenset[str], breakers: set[str]) -> Iterator[str]:
    """`line: what` for every use in `tree` of one of the breaker's private `names`."""
    yield from _uses(tree, names, breakers, in_breaker=False)


def _uses(
    node: ast.AST, names: frozenset[str], breakers: set[str], *, in_breaker: bool
) -> Iterator[str]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.ClassDef):
            inside = child.name in breakers
            if inside:
                for item in child.body:  # an override of a private method, or a slot
                    if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and (
                        item.name in names
                    ):
                        yield f"{item.lineno}: {child.name} defines {item.name}"
                    if isinstance(item, ast.Assign):
                        for slot in _slots(item):
                            if slot in names:
                                yield f"{item.lineno}: {child.name} has slot {slot}"
            yield from _uses(child, names, breakers, in_breaker=inside)
            continue
        # a store's own attribute of the same name, on `self` outside a breaker, is its own
        if (
            isinstance(child, ast.Attribute)
            and child.attr in names
            and (in_breaker or not _on_self(child))
        ):
            yield f"{child.lineno}: {ast.unparse(child)}"
        if (
            isinstance(child, ast.Call)
            and isinstance(child.func, ast.Name)
            and child.func.id in _ATTRIBUTE_CALLS
            and len(child.args) >= 2
            and isinstance(child.args[1], ast.Constant)
            and child.args[1].value in names
        ):
            yield f"{child.lineno}: {ast.unparse(child)}"
        yield from _uses(child, names, breakers, in_breaker=in_breaker)


def _slots(item: ast.Assign) -> Iterator[str]:
    if any(isinstance(t, ast.Name) and t.id == "__slots__" for t in item.targets):
        yield from _strings(item.value)


def violations(sources: dict[str, str], machine: str) -> list[str]:
    names = private_names(machine)
    trees = {path: ast.parse(source) for path, source in sources.items()}
    breakers = breaker_classes(list(trees.values()))
    return [
        f"{path}:{found}" for path, tree in trees.items() for found in uses(tree, names, breakers)
    ]


def test_stores_use_only_the_public_interface_of_the_breaker() -> None:
    files = sorted(STORE.rglob("*.py"))
    assert len(files) >= 4  # base, memory, redis/store, ...: the walk sees the stores
    sources = {str(path.relative_to(PACKAGE.parent)): path.read_text() for path in files}
    found = violations(sources, MACHINE.read_text())
    assert found == [], "private fields of CircuitBreaker used by a store:\n" + "\n".join(found)


# -- the walk itself ------------------------------------------------------------------------

MACHINE_SAMPLE = """
class CircuitBreaker:
    __slots__ = ("_state", "_clock", "tenant")
    def __init__(self) -> None:
        self._state = 0
        self._clock = 0
        self.tenant = "t"
        self._count: int = 0
    def _roll(self) -> None:
        self._window = 1
    def acquire(self) -> None: ...
"""


def test_the_private_names_are_slots_self_assignments_and_private_methods() -> None:
    names = private_names(MACHINE_SAMPLE)
    assert names == {"_state", "_clock", "_count", "_roll", "_window"}
    real = private_names(MACHINE.read_text())
    assert {"_state", "_roll", "_probes", "_retry_at", "_bucket_end"} <= real
    assert not {name for name in real if not name.startswith("_") or name.startswith("__")}


def test_the_walk_finds_every_kind_of_use() -> None:
    store = """
class View(CircuitBreaker):
    __slots__ = ("_store", "_state")
    def acquire(self):
        return self._state
    def _roll(self): ...
    def release(self):
        super()._roll()
class Deep(View):
    def go(self):
        def inner():
            self._count += 1
        inner()
class Store:
    def __init__(self):
        self._clock = 0
    def look(self, breaker):
        getattr(breaker, "_count")
        return breaker._state, self._clock, self._store
"""
    found = violations({"s.py": store}, MACHINE_SAMPLE)
    assert found == [
        "s.py:3: View has slot _state",
        "s.py:6: View defines _roll",
        "s.py:5: self._state",
        "s.py:8: super()._roll",
        "s.py:12: self._count",
        "s.py:18: getattr(breaker, '_count')",
        "s.py:19: breaker._state",
    ]


def test_public_names_and_a_stores_own_fields_pass() -> None:
    store = """
class View(CircuitBreaker):
    def acquire(self):
        return self.fast_permit, self._verdicts
class Store:
    def __init__(self, clock):
        self._clock = clock
    def look(self, breaker):
        return breaker.generation, breaker.view(), self._clock()
"""
    assert violations({"s.py": store}, MACHINE_SAMPLE) == []
