"""Import layering, read from the source with ``ast`` (nothing is imported).

* The library layers (config, eval, data, retrieval, models, losses, techniques, tracking) never
  import the CLI (``rankexp.cli``) or the API (``rankexp.api``, and what sits beside it: the run
  stages ``rankexp.pipeline``, the sweep launcher ``rankexp.sweep``, ``rankexp.hydra_app``), not even
  lazily inside a function: imports point downwards, from the commands to the library.
* ``rankexp.models`` never imports ``rankexp.retrieval`` (dense retrieval uses the bi-encoder).
* No import cycle between rankexp modules at module level (imports inside functions and under
  ``if TYPE_CHECKING:`` do not run at import time and are left out).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "rankexp"
LOWER = ("config", "eval", "data", "retrieval", "models", "losses", "techniques", "tracking")
# the CLI and the API, and what sits beside the API above the library: the run stages, the sweep launcher
UPPER = ("rankexp.cli", "rankexp.api", "rankexp.pipeline", "rankexp.sweep", "rankexp.hydra_app")

# lower layers that must not reach up into a named higher one, even lazily (retrieval uses models:
# the bi-encoder loads checkpoints through rankexp.models.checkpoints, not through dense retrieval)
NOT_UP = {"rankexp.models": ("rankexp.retrieval",)}

# a violation in a file owned by another engineer of issue 13: xfail(strict=True) until they fix it
KNOWN: dict[str, str] = {}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = name.split(".") if is_package else name.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def imports(name: str, path: Path, module_level_only: bool) -> set[str]:
    """The dotted names ``path`` imports (``from a import b`` gives ``a`` and ``a.b``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    out: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if module_level_only and isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                continue
            if module_level_only and isinstance(child, ast.If) and _type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.Import):
                out.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                mod = _absolute(child, name, is_package)
                out.add(mod)
                out.update(f"{mod}.{a.name}" for a in child.names if a.name != "*")
            visit(child)

    visit(tree)
    return out


def _is_upper(imported: str) -> bool:
    return any(imported == u or imported.startswith(u + ".") for u in UPPER)


def lower_modules() -> list[str]:
    return [m for m in modules() if m.split(".")[1:2] and m.split(".")[1] in LOWER]


def _param(m: str):
    return pytest.param(m, marks=pytest.mark.xfail(strict=True, reason=KNOWN[m])) if m in KNOWN else m


@pytest.mark.parametrize("module", [_param(m) for m in lower_modules()])
def test_library_does_not_import_cli_or_api(module):
    bad = sorted(i for i in imports(module, modules()[module], module_level_only=False) if _is_upper(i))
    assert not bad, f"{module} imports {', '.join(bad)}: the library layers must not import the CLI, the API or the stages"


@pytest.mark.parametrize("layer", sorted(NOT_UP))
def test_models_do_not_import_retrieval(layer):
    bad = sorted(f"{m} -> {i}" for m in modules() if m == layer or m.startswith(layer + ".")
                 for i in imports(m, modules()[m], module_level_only=False)
                 if any(i == u or i.startswith(u + ".") for u in NOT_UP[layer]))
    assert not bad, "imports pointing upwards: " + "; ".join(bad)


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        deps = set()
        for i in imports(name, path, module_level_only=True):
            # "from a import b": b is a submodule or a name in a; the module is the longest known prefix
            while i and i not in mods:
                i = i.rpartition(".")[0]
            if i and i != name:
                deps.add(i)
        graph[name] = deps
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_module_level_import_cycles():
    # a package's __init__ importing its own submodules (re-exports) is not a cycle: only a
    # submodule importing its package back at module level while the package imports it is
    graph = import_graph()
    cycles = find_cycles(graph)
    assert not cycles, "module-level import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_the_checker_sees_lazy_imports_and_cycles(tmp_path):
    """The checks can fail: a lazy ``from rankexp import api`` is found, and a two-module cycle is one."""
    src = tmp_path / "x.py"
    src.write_text("import os\n\ndef f():\n    from rankexp import api\n    from ..cli import _common\n")
    found = imports("rankexp.eval.x", src, module_level_only=False)
    assert "rankexp.api" in found and "rankexp.cli._common" in found
    assert "rankexp.api" not in imports("rankexp.eval.x", src, module_level_only=True)
    guarded = tmp_path / "y.py"
    guarded.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rankexp import cli\n")
    assert "rankexp.cli" not in imports("rankexp.eval.y", guarded, module_level_only=True)
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []
