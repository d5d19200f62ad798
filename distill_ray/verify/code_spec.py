"""The test-spec format of a code problem (records.py's `tests` JSON), and building one from a dataset's tests.

What it does
  A test spec says how the code judge (verify/code.py) tests a solution. Four formats:
    call    {"format": "call", "entry_point", "inputs": [[args...], ...], "outputs": [...], "atol"}
    assert  {"format": "assert", "entry_point", "setup", "asserts": ["assert f(1) == 2", ...]}
    pytest  {"format": "pytest", "test_code"}   test functions run in the solution's own namespace
    stdio   {"format": "stdio", "cases": [{"stdin", "stdout"}, ...]}
  `build_test_spec(value, test_format, entry_point, setup)` turns a dataset field in one of the `TEST_FORMATS` into a
  spec ("spec" means the field already is one); `strip_solution_imports` removes the `from solution import ...`
  lines of pytest files, which the solution's namespace makes unnecessary.

How to run it
  build_test_spec(["assert add(1, 2) == 3"], "assert")     # entry point found from the call

What it does not guarantee
  That the tests are right or sufficient; only that they have a shape the judge can run.
"""

from __future__ import annotations

import ast
import builtins
import json
from collections.abc import Mapping
from typing import Any

TEST_FORMATS = ("assert", "pytest", "stdio", "call", "spec")


def value_text(value: Any) -> str:
    """A dataset value as stripped text; integral floats without ".0" (ids and counts read from Parquet)."""
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def build_test_spec(value: Any, test_format: str, entry_point: str = "", setup: str = "") -> dict[str, Any]:
    """Turn a dataset's tests into one of the records.py test specs; ValueError when they cannot be."""
    if isinstance(value, str) and test_format in ("stdio", "call", "spec") and value.strip()[:1] in "[{":
        try:
            value = json.loads(value)  # APPS/TACO-style sets store their cases as a JSON string
        except json.JSONDecodeError as exc:
            raise ValueError(f"invalid JSON ({exc.msg})") from None
    if test_format == "assert":
        return _assert_spec(value, entry_point, setup)
    if test_format == "pytest":
        code = value_text(value) if not isinstance(value, list) else "\n\n".join(value_text(v) for v in value)
        if not code:
            raise ValueError("no test code")
        code, _names = strip_solution_imports(code)
        return {"format": "pytest", "test_code": code if code.endswith("\n") else code + "\n"}
    if test_format == "stdio":
        return {"format": "stdio", "cases": _stdio_cases(value)}
    if test_format == "call":
        if not isinstance(value, Mapping):
            raise ValueError("call tests must be an object with inputs and outputs")
        inputs, outputs = value.get("inputs"), value.get("outputs")
        entry = entry_point or value_text(value.get("fn_name") or value.get("entry_point"))
        if not entry:
            raise ValueError("call tests need an entry point")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs) or not inputs:
            raise ValueError("call tests need equally long, non-empty inputs and outputs lists")
        args = [list(i) if isinstance(i, (list, tuple)) else [i] for i in inputs]
        return {"format": "call", "entry_point": entry, "inputs": args, "outputs": outputs, "atol": 0}
    if test_format == "spec":
        if not isinstance(value, Mapping) or value.get("format") not in ("call", "assert", "pytest", "stdio"):
            raise ValueError("not a test spec (an object whose format is call, assert, pytest or stdio)")
        return dict(value)
    raise ValueError(f"unknown test format {test_format!r}")


def _assert_spec(value: Any, entry_point: str, setup: str) -> dict[str, Any]:
    pieces = [value] if isinstance(value, str) else list(value or [])
    asserts: list[str] = []
    setup_lines: list[str] = [setup] if setup else []
    for piece in pieces:
        source = value_text(piece)
        if not source:
            continue
        try:
            tree = ast.parse(source)
        except SyntaxError as exc:
            raise ValueError(f"an assert does not parse (line {exc.lineno}: {exc.msg})") from None
        for node in tree.body:
            segment = ast.get_source_segment(source, node) or ast.unparse(node)
            # Imports and helpers that travel with the asserts (MBPP+'s "import math") are setup, not tests.
            (asserts if isinstance(node, ast.Assert) else setup_lines).append(segment)
    if not asserts:
        raise ValueError("no assert statements")
    entry = entry_point or _called_function(asserts, "\n".join(setup_lines))
    if not entry:
        raise ValueError("no entry point (map one, or call the function by name in the asserts)")
    return {"format": "assert", "entry_point": entry, "setup": "\n".join(setup_lines), "asserts": asserts}


def _called_function(asserts: list[str], setup: str) -> str:
    """The first plainly named, non-builtin function the asserts call (MBPP style), or ""."""
    defined = set()
    try:
        for node in ast.walk(ast.parse(setup or "pass")):
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                defined.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    except SyntaxError:
        pass
    for text in asserts:
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                name = node.func.id
                if not hasattr(builtins, name) and name not in defined:
                    return name
    return ""


def _stdio_cases(value: Any) -> list[dict[str, str]]:
    if isinstance(value, Mapping):
        inputs, outputs = value.get("inputs"), value.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise ValueError("stdio tests need equally long inputs and outputs lists")
        pairs = list(zip(inputs, outputs, strict=True))
    elif isinstance(value, list):
        pairs = []
        for case in value:
            if not isinstance(case, Mapping):
                raise ValueError("each stdio case must be an object with stdin/stdout (or input/output)")
            pairs.append((case.get("stdin", case.get("input")), case.get("stdout", case.get("output"))))
    else:
        raise ValueError("stdio tests must be a list of cases or an object with inputs and outputs")
    cases = []
    for stdin, stdout in pairs:
        if stdin is None or stdout is None:
            raise ValueError("a stdio case lacks its input or output")
        join = "\n".join
        cases.append(
            {
                "stdin": join(map(str, stdin)) if isinstance(stdin, list) else str(stdin),
                "stdout": join(map(str, stdout)) if isinstance(stdout, list) else str(stdout),
            }
        )
    if not cases:
        raise ValueError("no stdio cases")
    return cases



def strip_solution_imports(test_code: str) -> tuple[str, list[str]]:
    """Test code without its `from solution import ...` statements, and the names they imported.

    Datasets such as KodCode write pytest files that import the solution as a module; the project's test spec runs
    test code in the solution's own namespace (records.py), where those names already exist and the import would
    fail. Each import becomes `pass` at its indentation, so a block that held only the import stays valid.
    """
    try:
        tree = ast.parse(test_code)
    except SyntaxError as exc:
        raise ValueError(f"test code does not parse (line {exc.lineno}: {exc.msg})") from None
    lines = test_code.splitlines()
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "solution" and node.level == 0:
            for alias in node.names:
                if alias.name != "*" and alias.name not in names:
                    names.append(alias.name)
            assert node.end_lineno is not None
            indent = lines[node.lineno - 1][: node.col_offset]
            lines[node.lineno - 1] = f"{indent}pass"
            for i in range(node.lineno, node.end_lineno):
                lines[i] = ""
    return "\n".join(lines) + ("\n" if test_code.endswith("\n") else ""), names

