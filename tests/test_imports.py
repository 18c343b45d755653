"""The package's import graph, read from the source (AST), imports inside functions included:
nothing in petridish.lab imports petridish.experiments, and no module cycle anywhere."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "src"
PACKAGE = ROOT / "petridish"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _target(name: str) -> str | None:
    """The petridish module ``name`` refers to (a module, or the module that defines the name)."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def imports_of(module: str) -> set[str]:
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):      # every scope, functions too
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
        else:
            continue
        for n in names:
            t = _target(n) if n.startswith("petridish") else None
            if t and t != module:
                found.add(t)
    return found


GRAPH = {m: imports_of(m) for m in MODULES}


def test_the_graph_is_read():
    assert len(MODULES) > 50
    assert "petridish.lab.experiment" in GRAPH["petridish.lab.sweep"]
    assert "petridish.lab.source" in GRAPH["petridish.lab.sweep"]
    assert "petridish.lab.registry" in GRAPH["petridish.lab.source"]


def test_lab_never_imports_the_catalogue():
    bad = sorted(f"{m} -> {t}" for m, ts in GRAPH.items() if m.startswith("petridish.lab")
                 for t in ts if t == "petridish.experiments" or t.startswith("petridish.experiments."))
    assert bad == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_inside_the_package():
    assert _cycles(GRAPH) == []


def test_a_worker_imports_no_scipy_sqlalchemy_or_plotting():
    """What a worker process imports to run a catalogue task (the task's experiment module and
    the worker): training needs torch, not scipy.stats (~1 s), SQLAlchemy or matplotlib, which
    only the driver's analysis, store and figures use. Each is paid once per worker start."""
    import subprocess
    import sys
    code = ("import sys, petridish.lab.worker, petridish.experiments.double_descent; "
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'scipy', 'sqlalchemy', 'matplotlib'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_command_line_starts_without_torch():
    """`petridish --help`, `petridish ctf ...` and the referee's server need no torch (3 s to import
    on a 2-core machine, most of the start-up): the CLI module and the referee import none of it.
    Commands that train import it when they run; a Ray address is checked before (lab.ray_address: no
    torch, no Ray)."""
    import subprocess
    import sys
    code = ("import sys, petridish.cli.main, petridish.ctf.main, petridish.ctf.scoring, petridish.lab.ray_address; "
            "print('torch' in sys.modules, 'ray' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False False"
