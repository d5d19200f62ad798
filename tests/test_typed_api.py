"""Every public function of distill_ray/ annotates its parameters and its return: read from the source with `ast`.

Public: a module-level function or a method of a module-level class whose name does not start with "_", plus
`__init__` of such a class (its parameters are the class's constructor). `self`/`cls` need no annotation, nor does
`__init__` need a return. Private modules count too (`verify/_launcher.py` is stdlib-only, and annotations are
strings there under `from __future__ import annotations`).
Not checked: that the annotations are right (no type checker runs here), nested functions, lambdas.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import distill_ray

PACKAGE_ROOT = Path(distill_ray.__file__).parent


def _public_functions(tree: ast.Module) -> Iterator[tuple[str, ast.FunctionDef | ast.AsyncFunctionDef]]:
    """(qualified name, node) for each public function and public-class method of one module."""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith("_"):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and (
                        not item.name.startswith("_") or item.name == "__init__"):
                    yield f"{node.name}.{item.name}", item


def _unannotated(node: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    args = node.args
    params = [*args.posonlyargs, *args.args, *args.kwonlyargs, *filter(None, (args.vararg, args.kwarg))]
    missing = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
    if node.returns is None and node.name != "__init__":
        missing.append("return")
    return missing


def _untyped() -> list[str]:
    found = []
    for path in sorted(PACKAGE_ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for name, node in _public_functions(tree):
            if missing := _unannotated(node):
                found.append(f"{path.relative_to(PACKAGE_ROOT)}:{node.lineno} {name}: {', '.join(missing)}")
    return found


def test_every_public_function_is_annotated() -> None:
    assert _untyped() == []


def test_the_walk_sees_methods_and_missing_returns() -> None:
    """Guards the checker itself on a small source."""
    tree = ast.parse("def f(a, b: int): pass\nclass C:\n    def __init__(self, x): pass\n"
                     "    def m(self) -> None: pass\n    def _p(self, y): pass\ndef _g(z): pass\n")
    found = {name: _unannotated(node) for name, node in _public_functions(tree)}
    assert found == {"f": ["a", "return"], "C.__init__": ["x"], "C.m": []}
