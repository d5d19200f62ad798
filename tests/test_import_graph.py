"""The package's import arrows point one way: read from the source with `ast`, so lazy imports inside functions count.

Checked: no two folders of distill_ray/ import each other, and the library folders (teacher/, verify/, train/,
evaluate/, problems/) never import the sweep file's model (`config.SweepConfig`), the experiment layout
(`experiment`), the sweep, the CLI or `stages/`.
Not checked: imports built from strings (`importlib.import_module(name)`, the benchmark registry's "module:function").
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import distill_ray

PACKAGE_ROOT = Path(distill_ray.__file__).parent
LIBRARY_FOLDERS = ("teacher", "verify", "train", "evaluate", "problems")
SWEEP_LEVEL_MODULES = ("distill_ray.stages", "distill_ray.sweep", "distill_ray.cli", "distill_ray.experiment")


def _module_name(path: Path) -> tuple[str, str]:
    """(module name, the package its relative imports resolve against)."""
    parts = list(path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
        return ".".join(parts), ".".join(parts)
    return ".".join(parts), ".".join(parts[:-1])


def _imports(path: Path) -> set[str]:
    """Every distill_ray name the file imports, as dotted names (`from a import b` gives both a and a.b)."""
    _, package = _module_name(path)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name == "distill_ray" or name.startswith("distill_ray.")}


def _folder(module: str) -> str | None:
    """The sub-package a module lives in (distill_ray.verify.code -> verify); None for a top-level module."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    sub = PACKAGE_ROOT / parts[1]
    return parts[1] if sub.is_dir() else None


def _graph() -> dict[str, set[str]]:
    return {_module_name(p)[0]: _imports(p) for p in sorted(PACKAGE_ROOT.rglob("*.py"))}


def test_no_folder_imports_a_folder_that_imports_it_back() -> None:
    folder_edges: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for module, targets in _graph().items():
        source = _folder(module)
        for target in targets:
            dest = _folder(target)
            if source and dest and source != dest:
                folder_edges[source][dest].append(f"{module} -> {target}")
    cycles = [
        (a, b, folder_edges[a][b][:3], folder_edges[b][a][:3])
        for a in sorted(folder_edges) for b in sorted(folder_edges[a]) if a < b and a in folder_edges[b]
    ]
    assert cycles == []


def test_libraries_never_import_the_sweep_the_stages_or_the_layout() -> None:
    offending = sorted(
        f"{module} -> {target}"
        for module, targets in _graph().items()
        if _folder(module) in LIBRARY_FOLDERS
        for target in targets
        if target == "distill_ray.config.SweepConfig"
        or any(target == top or target.startswith(top + ".") for top in SWEEP_LEVEL_MODULES)
    )
    assert offending == []


def test_the_walk_sees_lazy_and_relative_imports() -> None:
    """Guards the checker itself: a function-level import and the folder map are found."""
    graph = _graph()
    assert "distill_ray.verify.check_code" in graph["distill_ray.problems.verifiable"]  # imported inside a function
    assert _folder("distill_ray.verify.code") == "verify"
    assert _folder("distill_ray.records") is None
