"""The package's import graph: no cycles among `resilience` modules, and no import of `app`.

A small AST walk instead of importing: it sees imports inside functions too (a deferred
import still ties two modules together; hiding a cycle in a function is how the old ones
survived) and skips only those under `if TYPE_CHECKING:`, which never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "resilience"

Graph = dict[str, set[str]]


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every `.py` file under the package `root`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def run_time_imports(body: list[ast.stmt]) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run, at any depth, except under `if TYPE_CHECKING:`."""
    for node in body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and _is_type_checking(node.test):
            yield from run_time_imports(node.orelse)
        else:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.stmt):
                    yield from run_time_imports([child])
                elif isinstance(child, ast.ExceptHandler | ast.match_case):
                    yield from run_time_imports(child.body)


def all_imports(tree: ast.Module) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement, `TYPE_CHECKING` blocks included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node


def imported_names(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    """Absolute dotted names an import statement loads (`from a import b` gives `a.b`)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        here = module.split(".") if is_package else module.split(".")[:-1]
        anchor = here[: len(here) - node.level + 1]
        base = ".".join([*anchor, *([node.module] if node.module else [])])
    return [f"{base}.{alias.name}" for alias in node.names] + [base]


def import_graph(found: Mapping[str, Path]) -> Graph:
    """Module -> the package's modules it imports at run time (the longest known prefix)."""
    graph: Graph = {}
    for module, path in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        edges = graph[module] = set()
        for node in run_time_imports(tree.body):
            names = imported_names(node, module, path.name == "__init__.py")
            if isinstance(node, ast.ImportFrom):  # `from pkg import sub`: sub if a module
                submodules = [n for n in names[:-1] if n in found]
                names = submodules if len(submodules) == len(names) - 1 else names[-1:] + submodules
            for name in names:
                while name not in found and "." in name:
                    name = name.rpartition(".")[0]
                if name in found and name != module:
                    edges.add(name)
    return graph


def cycles(graph: Graph) -> list[list[str]]:
    """One closed path per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []

    def visit(v: str) -> None:  # Tarjan; the package is far too shallow to hit recursion limits
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(component)

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_closed_path(graph, component) for component in components]


def _closed_path(graph: Graph, component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, for a readable failure."""
    start = min(component)
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return [*paths[v], start]
                if w not in paths:
                    paths[w] = [*paths[v], w]
                    following.append(w)
        frontier = following
    raise AssertionError(f"no cycle through {start} in {sorted(component)}")


def _dynamic_import(node: ast.AST) -> str | None:
    """The literal name of `import_module("...")` / `__import__("...")`, if `node` is one."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    called = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
    first = node.args[0]
    if called in ("import_module", "__import__") and isinstance(first, ast.Constant):
        return str(first.value)
    return None


def _loads_app(name: str) -> bool:
    return name == "app" or name.startswith("app.")


def app_imports(found: Mapping[str, Path]) -> list[str]:
    """`file:line name` of every import of the top-level `app` package, however guarded,
    and of every `import_module("app...")` / `__import__("app...")` with a literal name."""
    hits = []
    for module, path in found.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        is_package = path.name == "__init__.py"
        for node in all_imports(tree):
            names = imported_names(node, module, is_package)
            hits += [f"{path.name}:{node.lineno} {n}" for n in names if _loads_app(n)]
        for call in ast.walk(tree):
            name = _dynamic_import(call)
            if name is not None and _loads_app(name):
                hits.append(f"{path.name}:{getattr(call, 'lineno', 0)} {name}")
    return hits


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph(modules(PACKAGE))
    # the walk sees the package: a broken walker finding nothing would pass vacuously
    assert len(graph) > 30
    assert {"resilience.errors", "resilience.breaker.registry"} <= graph[
        "resilience.client.resilient"
    ]
    found = cycles(graph)
    assert found == [], "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


LAYERS = (
    "types",
    "errors",
    "models",
    "extras",
    "idle",
    "deadline",
    "classify",
    "tenancy",
    "routing",
    "breaker",
    "retry",
    "providers",
    "usage",
    "audit",
    "config",
    "formats",
    "client",
    "embed",
    "one_write",
    "serving",
    "chaos",
    "gateway",
    "cli",
    "",  # resilience/__init__.py: the public names
)
"""The package's top-level parts in layer order, as docs/architecture.md ("Parts") lists them."""


def _part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def layer_violations(graph: Graph) -> list[str]:
    """Imports from a part to a part listed after it (within a part, any order goes)."""
    rank = {part: i for i, part in enumerate(LAYERS)}
    return sorted(
        f"{module} -> {target}"
        for module, targets in graph.items()
        for target in targets
        if rank[_part(target)] > rank[_part(module)]
    )


def test_every_part_imports_only_the_parts_above_it() -> None:
    graph = import_graph(modules(PACKAGE))
    assert {_part(m) for m in graph} == set(LAYERS), "a part is missing from LAYERS"
    assert layer_violations(graph) == []


def test_the_layer_check_sees_an_upward_import() -> None:
    graph = {"resilience.breaker.machine": {"resilience.client.resilient"}}
    assert layer_violations(graph) == ["resilience.breaker.machine -> resilience.client.resilient"]


def test_the_library_never_imports_app() -> None:
    assert app_imports(modules(PACKAGE)) == []


def test_errors_imports_nothing_else_of_the_package_at_run_time() -> None:
    """Every module may raise and classify: the taxonomy must sit under all of them."""
    graph = import_graph(modules(PACKAGE))
    assert graph["resilience.errors"] == set()
    assert graph["resilience.types"] == set()


def test_the_provider_interface_never_imports_an_adapter() -> None:
    graph = import_graph(modules(PACKAGE))
    adapters = {"resilience.providers.anthropic", "resilience.providers.openai"}
    assert graph["resilience.providers.base"].isdisjoint(adapters)
    assert adapters <= graph["resilience.providers"]  # the factory, beside the protocol


def _write(root: Path, files: Mapping[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_the_walk_finds_cycles_hidden_in_functions_and_resolves_relative_imports(
    tmp_path: Path,
) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "def f():\n    from pkg.b import g\n",
            "pkg/b.py": "from . import c\n",
            "pkg/c.py": "try:\n    import pkg.a\nexcept ImportError:\n    pass\n",
            "pkg/sub/__init__.py": "from .leaf import x\n",
            "pkg/sub/leaf.py": "from .. import a\n",
        },
    )
    graph = import_graph(modules(package))
    assert graph["pkg.sub"] == {"pkg.sub.leaf"}
    assert graph["pkg.sub.leaf"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]


def test_the_walk_ignores_type_checking_imports_but_not_their_else(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/a.py": "import pkg.b\n",
            "pkg/b.py": (
                "import typing\nif typing.TYPE_CHECKING:\n    from pkg import a\n"
                "else:\n    from pkg import c\n"
            ),
            "pkg/c.py": "",
        },
    )
    graph = import_graph(modules(package))
    assert graph["pkg.b"] == {"pkg.c"}
    assert cycles(graph) == []


def test_the_walk_finds_every_way_of_importing_app(tmp_path: Path) -> None:
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "import app\n",
            "pkg/a.py": "def f():\n    from app.main import create\n",
            "pkg/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import app.x\n",
            "pkg/c.py": "import importlib\nimportlib.import_module('app.main')\n",
            "pkg/d.py": "import application\nfrom pkg import app\n",
        },
    )
    assert sorted(app_imports(modules(package))) == [
        "__init__.py:1 app",
        "a.py:2 app.main",
        "a.py:2 app.main.create",
        "b.py:3 app.x",
        "c.py:2 app.main",
    ]
