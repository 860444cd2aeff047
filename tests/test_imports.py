"""The package's layering: every module imports alone, no import circle, imports point downward.

Layers (README "Layout"): the core (``secnn_jax`` except ``timing`` and ``distributed``; with
``traces``, ``accounting``, the layer geometry and work maps, and the data sources), then
``secnn_jax.timing``, then ``secnn_jax.distributed``; ``models`` beside the core (it may use the
core, nothing above it); ``experiments`` on top. The graph is read from the source (every
``import`` statement, including those inside functions), so a late import cannot hide a circle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("secnn_jax", "models", "experiments")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            if "scripts" in path.relative_to(ROOT).parts:
                continue  # maintenance scripts, run by hand
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The project modules ``name`` imports (a ``from P import m`` of a submodule counts as
    ``P.m``; importing a submodule's parent package implicitly is not counted)."""
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name in MODULES}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            subs = {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES}
            found |= subs
            if len(subs) < len(node.names) and base in MODULES:
                found.add(base)
    found.discard(name)
    return found


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def layer(name: str) -> int:
    """0 core, 1 timing, 2 distributed, 0 models (beside the core, checked apart), 3 experiments."""
    if name.startswith("experiments"):
        return 3
    if name.startswith("secnn_jax.distributed"):
        return 2
    if name.startswith("secnn_jax.timing"):
        return 1
    return 0


def test_graph_is_read() -> None:
    """The parser sees the imports it must see (a guard against a test that cannot fail)."""
    assert "secnn_jax.layers" in GRAPH["secnn_jax.phases"]
    assert "secnn_jax.traces" in GRAPH["secnn_jax.timing.replayer"]
    assert "models.registry" in GRAPH["models"]
    assert len(MODULES) > 60


def test_no_import_circle() -> None:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(GRAPH[v]):
            if w not in index:
                visit(w)
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
                circles.append(sorted(comp))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_imports_point_downward() -> None:
    bad = []
    for src, targets in GRAPH.items():
        for dst in targets:
            if src.startswith("models") and dst.startswith(("experiments", "secnn_jax.timing",
                                                             "secnn_jax.distributed")):
                bad.append(f"{src} -> {dst} (models sit beside the core)")
            elif src.startswith("secnn_jax") and dst.startswith(("models", "experiments")):
                bad.append(f"{src} -> {dst} (the library never imports the zoo or experiments)")
            elif src.startswith("secnn_jax") and layer(dst) > layer(src):
                bad.append(f"{src} -> {dst} (layer {layer(src)} imports layer {layer(dst)})")
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


@pytest.mark.parametrize("package", PACKAGES)
def test_every_module_imports_alone(package: str) -> None:
    mods = [m for m in MODULES if m.split(".")[0] == package]
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "_import_each.py"), *mods],
                          cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]


def test_the_replay_function_and_its_module_have_different_names() -> None:
    """``secnn_jax.timing.replay`` is the function; its module is ``secnn_jax.timing.replayer``
    (a module named ``replay`` was shadowed by the function: importing it gave the function)."""
    import importlib
    import types

    import secnn_jax.timing.replayer as replayer_module
    from secnn_jax import timing

    assert isinstance(replayer_module, types.ModuleType)
    assert importlib.import_module("secnn_jax.timing.replayer") is replayer_module
    assert callable(timing.replay) and not isinstance(timing.replay, types.ModuleType)
    assert timing.replay is replayer_module.replay
    assert timing.ReplayResult is replayer_module.ReplayResult
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("secnn_jax.timing.replay")


def _bound_names(path: Path) -> set[str]:
    """The names a module binds at its top level (definitions, assignments, imports, including
    those under ``if``/``try``), read from the source."""
    names: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                names.add(node.name)
            elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
                targets = node.targets if isinstance(node, ast.Assign) else [node.target]
                for t in targets:
                    names.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
            elif isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
            elif isinstance(node, ast.If | ast.Try | ast.With):
                visit(node.body)
                visit(getattr(node, "orelse", []))
                visit(getattr(node, "finalbody", []))
                for h in getattr(node, "handlers", []):
                    visit(h.body)
    visit(ast.parse(path.read_text(), str(path)).body)
    return names


def test_every_imported_project_name_exists() -> None:
    """Every ``from <project module> import name`` — at the top or inside a function, where no
    linter sees a removed name until the line runs — names something that module binds or one
    of its submodules."""
    bound = {name: _bound_names(path) for name, path in MODULES.items()}
    missing = []
    for name, path in MODULES.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[:len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            if base not in MODULES:
                continue
            for a in node.names:
                known = a.name in bound[base] or f"{base}.{a.name}" in MODULES
                if a.name != "*" and not known:
                    missing.append(f"{name}: from {base} import {a.name}")
    assert not missing, "imports of names that do not exist:\n" + "\n".join(sorted(missing))
