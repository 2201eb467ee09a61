"""The package's import graph: no circles, and no import running back up to the entry points.

Every ``import`` of a ``box2mask`` module is read from the source (function-local
imports included: a circle hidden in a function is still a circle), with
``adapters/`` and ``weights/`` mapped to ``box2mask.adapters`` and
``box2mask.weights`` as setuptools installs them.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
ROOTS = {"box2mask": REPO / "box2mask", "box2mask.adapters": REPO / "adapters",
         "box2mask.weights": REPO / "weights"}  # fmt: skip
#: the entry points: a core module importing them runs back up the layers
TOP = ("box2mask.pipeline", "box2mask.cli")
#: modules that only hand the entry points on (``import box2mask; box2mask.convert``, ``python -m``)
ENTRY = ("box2mask", "box2mask.__main__")


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for prefix, folder in ROOTS.items():
        for path in folder.rglob("*.py"):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            name = ".".join([prefix, *parts])
            if prefix == "box2mask" and parts and parts[0] in ("adapters", "weights"):
                continue
            mods[name] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            targets = [f"{base}.{a.name}" for a in node.names] + [base]
        for t in targets:
            # the longest known module that the name is, or lies in
            while t and t not in mods:
                t = t.rpartition(".")[0]
            if t and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph = {n: _imports(n, p, mods) for n, p in mods.items()}
    # a package's __init__ is imported with any of its modules; that edge is not a circle
    return {n: {t for t in ts if not n.startswith(t + ".")} for n, ts in graph.items()}


def test_the_graph_is_read():
    graph = _graph()
    assert "box2mask.engine" in graph["box2mask.pipeline"]
    assert "box2mask.adapters" in graph["box2mask.pipeline"]


def test_no_module_imports_itself_through_others():
    graph = _graph()
    circles = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                circles.append(" -> ".join(stack[stack.index(m) :] + [m]))
            elif m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert not circles, "import circles:\n" + "\n".join(circles)


def test_no_core_module_imports_the_pipeline_or_the_cli():
    up = [
        f"{n} -> {t}"
        for n, ts in _graph().items()
        for t in ts
        if n not in ENTRY and not n.startswith(TOP) and t.startswith(TOP)
    ]
    assert not up, "imports running back up:\n" + "\n".join(sorted(up))
