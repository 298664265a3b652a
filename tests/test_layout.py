"""The shape of the code: which module may import which, and how long a module may grow.

Layers, bottom to top: the core `mmsearch.*` (index, search, encoder, ...), then `indexer.*`
(which writes into the core's index), then `ui.*` (which may start the indexer), and on top
the one shell, the `mmsearch.cli` package, that wires all three into commands. A module may
import its own layer and those below it, never one above, and no import may close a cycle.
Imports are read with `ast` at any depth (inside functions too), so a lazy import counts: a
cycle that only happens at run time is still a cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mmsearch", "indexer", "ui")
SHELL = "mmsearch.cli"
MAX_LINES = 400
# Modules allowed over MAX_LINES for now, each with why it is not split yet. Shrink this list.
TOO_LONG_FOR_NOW = {
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules `name` imports, anywhere in the file."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = name.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from a import b` imports the module a.b when there is one, else a's name b
            targets = [f"{base}.{a.name}" for a in node.names]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = project_modules()
    known = set(modules)
    return {name: imports_of(name, path, known) for name, path in modules.items()}


def layer(name: str) -> int:
    if name == SHELL or name.startswith(SHELL + "."):
        return 3
    return {"mmsearch": 0, "indexer": 1, "ui": 2}[name.split(".")[0]]


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    names = ("core mmsearch", "indexer", "ui", "the mmsearch.cli shell")
    return [f"{a} ({names[layer(a)]}) imports {b} ({names[layer(b)]})"
            for a in sorted(graph) for b in sorted(graph[a]) if layer(b) > layer(a)]


def test_the_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "mmsearch.index" in graph["indexer.pipeline"]  # at the top of the file
    assert "indexer.pipeline" in graph["ui.handlers"]     # inside a method
    assert "ui.app" in graph["mmsearch.cli.serving"]      # the shell may import every layer


def test_no_import_cycles():
    found = cycles(import_graph())
    assert not found, "import cycles among project modules: " + "; ".join(
        " <-> ".join(c) for c in found)


def test_no_upward_imports():
    found = upward_imports(import_graph())
    assert not found, "a module imports a layer above its own:\n" + "\n".join(found)


def test_modules_stay_short():
    too_long = {}
    for name, path in project_modules().items():
        rel = path.relative_to(ROOT).as_posix()
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES and rel not in TOO_LONG_FOR_NOW:
            too_long[rel] = lines
    assert not too_long, f"modules over {MAX_LINES} lines (split them): {too_long}"


def test_the_allow_list_only_holds_long_files():
    stale = [rel for rel in TOO_LONG_FOR_NOW
             if not (ROOT / rel).exists()
             or len((ROOT / rel).read_text().splitlines()) <= MAX_LINES]
    assert not stale, f"no longer over {MAX_LINES} lines, drop from TOO_LONG_FOR_NOW: {stale}"


def test_the_checks_fail_on_a_violation(tmp_path):
    """The checks themselves: a made-up cycle, upward import and layer are caught."""
    fake = tmp_path / "fake.py"
    fake.write_text("def f():\n    from mmsearch import fusion, resident\n"
                    "    import ui.app as app\n")
    assert imports_of("mmsearch.fake", fake, set(project_modules())) == {
        "mmsearch.fusion", "mmsearch.resident", "ui.app"}
    graph = {"mmsearch.a": {"mmsearch.b"}, "mmsearch.b": {"mmsearch.a", "ui.app"},
             "indexer.x": {"mmsearch.a"}, "ui.app": {"indexer.x"},
             "mmsearch.cli.main": {"ui.app", "indexer.x", "mmsearch.a"}}
    assert cycles(graph) == [["indexer.x", "mmsearch.a", "mmsearch.b", "ui.app"]]
    assert upward_imports(graph) == ["mmsearch.b (core mmsearch) imports ui.app (ui)"]


def test_no_merge_conflict_markers_are_left():
    """A merge that left `<<<<<<<` in the README went unnoticed by every other test."""
    import subprocess

    tracked = subprocess.run(["git", "ls-files", "*.py", "*.md", "*.toml", "*.cfg", "*.sh",
                              ".ci/*"], cwd=ROOT, capture_output=True, text=True).stdout.split()
    marked = [f"{name}:{n}" for name in tracked if (ROOT / name).is_file()
              for n, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1)
              if line.startswith(("<<<<<<< ", ">>>>>>> ")) or line == "======="]
    assert tracked and not marked, f"merge conflict markers: {marked}"
