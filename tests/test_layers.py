"""
The package's import graph, read from its source (``ast``): no module imports another that imports it
back, however indirectly, and the triggers (run in the triggerer) do not depend on the operators.

Imports inside functions count as much as those at the top of a module: a cycle hidden in a function only
waits for the first call that closes it. Imports under ``TYPE_CHECKING`` count too (they become real the
day an annotation is needed at run time, and they were how ``api.validation`` and ``api.bodies``, and the
emulator's routes and its facade, imported each other). The implicit import of a module's parent package
is not an edge: a package ``__init__`` that re-exports its modules would otherwise be a cycle with each
of them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = "airflow_provider_sestek"
ROOT = Path(__file__).parent.parent / PACKAGE


def _modules() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


MODULES = _modules()


def _import_nodes(tree: ast.AST, typing_too: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement of a module, at any depth; those under ``if TYPE_CHECKING:`` if ``typing_too``."""
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Import | ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test) and not typing_too:
            todo += node.orelse
        else:
            todo += ast.iter_child_nodes(node)


def _imports(name: str, path: Path, typing_too: bool) -> Iterator[str]:
    """The package's modules that ``name`` imports, anywhere in its source."""
    is_package = path.name == "__init__.py"
    for node in _import_nodes(ast.parse(path.read_text(), str(path)), typing_too):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - node.level + 1]
                source = ".".join([*base, node.module] if node.module else base)
            else:
                source = node.module or ""
            # ``from package import module`` imports the module; ``from module import name`` the module.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in MODULES else source for a in node.names]
        for target in targets:
            # ``import a.b.c`` names a.b.c; the nearest module of the package it names.
            while target and target not in MODULES:
                target = target.rpartition(".")[0]
            if target.startswith(PACKAGE) and target != name:
                yield target


#: What each module imports when it runs (at its top and in its functions).
GRAPH = {name: sorted(set(_imports(name, path, typing_too=False))) for name, path in MODULES.items()}
#: The same, with the imports for annotations only.
TYPED_GRAPH = {name: sorted(set(_imports(name, path, typing_too=True))) for name, path in MODULES.items()}


def _cycles(graph: dict[str, list[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for succ in graph.get(node, []):
            if succ not in index:
                visit(succ)
                low[node] = min(low[node], low[succ])
            elif succ in on_stack:
                low[node] = min(low[node], index[succ])
        if low[node] == index[node]:
            component = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                component.append(item)
                if item == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_graph_is_read_from_the_source() -> None:
    # A reader that found no edges would prove nothing below.
    assert f"{PACKAGE}.api.bodies" in GRAPH[f"{PACKAGE}.api"]
    assert f"{PACKAGE}.hooks.flow" in GRAPH[f"{PACKAGE}.hooks.sestek"]  # inside a method
    assert f"{PACKAGE}.hooks.transport_sync" not in GRAPH[f"{PACKAGE}.hooks.config"]
    source = ast.parse("if TYPE_CHECKING:\n    import a\nimport b\ndef f():\n    from c import d\n")
    assert {ast.unparse(n) for n in _import_nodes(source, typing_too=False)} == {"import b", "from c import d"}
    assert len(list(_import_nodes(source, typing_too=True))) == 3
    assert _cycles({"a": ["b"], "b": ["c"], "c": ["a"], "d": ["a"]}) == [["a", "b", "c"]]


def test_no_module_of_the_package_imports_itself_back() -> None:
    assert _cycles(GRAPH) == []


def test_no_module_of_the_package_imports_itself_back_even_for_annotations() -> None:
    assert _cycles(TYPED_GRAPH) == []


def test_triggers_import_nothing_from_operators_or_sensors() -> None:
    found = {
        name: [t for t in targets if t.startswith((f"{PACKAGE}.operators", f"{PACKAGE}.sensors"))]
        for name, targets in GRAPH.items()
        if name.startswith(f"{PACKAGE}.triggers")
    }
    assert {name: targets for name, targets in found.items() if targets} == {}
