"""The layering DESIGN.md draws: the app and the engine know nothing of OmniWorld, and no
module imports itself back through another."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("nextomni", "ui", "sessions")


def loaded_modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "; import sys; print(' '.join(sys.modules))"],
                         cwd=ROOT, capture_output=True, text=True, check=True,
                         env={"GRADIO_ANALYTICS_ENABLED": "False", "PATH": ""})
    return set(out.stdout.split())


def test_app_and_engine_load_nothing_of_the_world():
    mods = loaded_modules("import ui.app, nextomni.engine, nextomni.model")
    world = sorted(m for m in mods if m == "nextomni.data" or m.startswith("nextomni.data."))
    assert "nextomni.engine" in mods and "ui.app" in mods
    assert world == [], f"loaded by the app / engine / model: {world}"


def imports_of(path: Path, module: str) -> set[str]:
    """Every project module `module` imports, at the top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] in PACKAGES)
    return found - {module}


def module_graph() -> dict[str, set[str]]:
    files = {}
    for pkg in PACKAGES:
        for p in (ROOT / pkg).rglob("*.py"):
            name = ".".join(p.relative_to(ROOT).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = p
    graph = {}
    for name, p in files.items():
        # `from a.b import c` names a.b.c when c is a module, else a.b
        graph[name] = {m if m in files else m.rsplit(".", 1)[0] for m in imports_of(p, name)}
        graph[name] = {m for m in graph[name] if m in files and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the path, 2: finished
    path: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        path.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == 1:
                return path[path.index(m):] + [m]
            if m not in state and (c := visit(m)):
                return c
        state[n] = 2
        path.pop()
        return None

    for n in sorted(graph):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_no_import_circles():
    graph = module_graph()
    assert "nextomni.model.formatting" in graph and graph["nextomni.model.formatting"]
    # package __init__ files re-export their modules: an edge into one's own package is not a
    # circle of two jobs
    graph = {n: {m for m in ms if not n.startswith(m + ".")} for n, ms in graph.items()}
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_cycle_finder_finds_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None
