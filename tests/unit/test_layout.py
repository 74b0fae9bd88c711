"""The layering docs/architecture.md describes: model_runtime knows nothing of editors,
and no module imports one that imports it back (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("phi_lsp", "model_runtime")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            if "__pycache__" in p.parts or "data" in p.relative_to(ROOT).parts:
                continue
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            out[name.removesuffix(".__init__")] = p
    return out


def _imports(path: Path) -> set[str]:
    """Every module named by an import in ``path``, at any depth, except the ones under
    ``if TYPE_CHECKING:`` (never run)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skip: set[int] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.If) and "TYPE_CHECKING" in ast.unparse(n.test):
            skip.update(id(x) for stmt in n.body for x in ast.walk(stmt))
    names: set[str] = set()
    for n in ast.walk(tree):
        if id(n) in skip:
            continue
        if isinstance(n, ast.Import):
            names.update(a.name for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and n.level == 0:
            # `from pkg import sub` names the submodule when there is one (_graph resolves
            # each name to the longest module it starts with).
            names.update(f"{n.module}.{a.name}" for a in n.names)
    return names


def _graph() -> dict[str, set[str]]:
    mods = _modules()

    def owner(name: str) -> str | None:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for m, p in mods.items():
        targets = {owner(n) for n in _imports(p)}
        graph[m] = {t for t in targets if t is not None and t != m}
    return graph


def test_model_runtime_knows_nothing_of_editors_or_source_trees() -> None:
    banned = ("phi_lsp", "pygls", "lsprotocol", "tree_sitter")
    for m, p in _modules().items():
        if m.startswith("model_runtime"):
            bad = sorted(n for n in _imports(p) if n.split(".")[0] in banned)
            assert not bad, f"{m} imports {bad}"


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        path.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return path[path.index(t) :] + [t]
            if t not in state and (found := visit(t)):
                return found
        path.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles() -> None:
    cycle = _find_cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_cycle_check_sees_a_lazy_import_back(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("def f():\n    import pkg.b\n")  # lazy, inside a function
    b.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import pkg.c\nimport pkg.a\n"
    )
    names = {"pkg.a", "pkg.b", "pkg.c"}
    graph = {"pkg.a": names & _imports(a), "pkg.b": names & _imports(b)}
    assert graph == {"pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}}  # TYPE_CHECKING does not count
    assert _find_cycle(graph) == ["pkg.a", "pkg.b", "pkg.a"]
