"""The shape of the code, checked: no import cycles (imports inside functions count), layers that only point
down, and modules that read in one sitting. A change that breaks one of these fails here, not in review."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUNCTION = ROOT / "function"
LOCAL = ROOT / "local"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    base = FUNCTION if path.is_relative_to(FUNCTION) else ROOT
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _sources() -> dict[str, Path]:
    files = [*FUNCTION.rglob("*.py"), *LOCAL.rglob("*.py")]
    return {_module_name(p): p for p in files if "__pycache__" not in p.parts}


MODULES = _sources()


def _resolve(name: str) -> str | None:
    """The project module an import names (a package import counts as its __init__), or None."""
    while name:
        if name in MODULES:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(module: str) -> set[str]:
    """Every project module `module` imports, at module level or inside a function (TYPE_CHECKING ones too)."""
    tree = ast.parse(MODULES[module].read_text())
    package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".") if package else []
                parent = parent[: len(parent) - (node.level - 1)] if node.level > 1 else parent
                base = ".".join([*parent, base] if base else parent)
            # `from pkg import sub` imports the submodule; `from pkg import name` imports pkg itself
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        for name in names:
            target = _resolve(name)
            if target and target != module:
                found.add(target)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_the_graph_sees_imports_inside_functions() -> None:
    # app.py imports its handlers inside the entry points: the graph must count those edges, or a cycle hidden
    # behind a function-level import would pass unseen.
    assert "handlers.trigger" in GRAPH["app"] and "handlers.followup" in GRAPH["app"]


def test_no_import_cycles_in_function_or_local() -> None:
    assert _cycles() == []


@pytest.mark.parametrize(
    ("layer", "forbidden"),
    [
        ("backups", ("handlers", "adapters", "triggers", "chatops", "local")),  # the domain
        ("adapters", ("chatops", "handlers", "local")),
        ("ycloud", ("backups", "handlers", "adapters", "triggers", "chatops", "security", "local")),
        ("triggers", ("backups", "handlers", "adapters", "chatops", "local")),
        ("security", ("backups", "handlers", "adapters", "chatops", "local")),
        ("chatops", ("handlers", "adapters", "local")),
    ],
)
def test_layers_point_down(layer: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(
        f"{m} -> {t}"
        for m, targets in GRAPH.items()
        if m == layer or m.startswith(layer + ".")
        for t in targets
        if t.split(".")[0] in forbidden
    )
    assert bad == []


def test_function_never_imports_local_or_tests() -> None:
    bad = sorted(
        f"{m} -> {t}" for m, ts in GRAPH.items() if not m.startswith("local") for t in ts if t.startswith("local")
    )
    assert bad == []


def test_every_module_reads_in_one_sitting() -> None:
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert long == {}


def test_the_cycle_finder_finds_a_cycle(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        __import__(__name__, fromlist=["GRAPH"]), "GRAPH", {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    )
    assert _cycles() == [["a", "b", "c"]]
