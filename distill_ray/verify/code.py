"""Code judge: extract the final ```python block of a response and run its tests in the sandbox, judging on values.

    from distill_ray.verify import check_code
    check_code("<think>..</think>\\n\\n```python\\ndef f(x):\\n    return 2 * x\\n```",
               '{"format": "call", "entry_point": "f", "inputs": [[3]], "outputs": [6], "atol": 0}')

Test formats (the JSON in `Problem.tests`, see records.py):
- call:   the sandbox computes f(*inputs[i]) and returns plain values; expected outputs stay here and are compared
          type-exactly (an int is not a float, a tuple is not a list; floats within `atol` when atol > 0).
- assert: each `assert A == B` becomes two values compared here (a literal side never enters the sandbox); any other
          assert is evaluated in the sandbox and must give a plain truthy value.
- pytest: `test_*` functions run in the sandbox; their `assert A == B` report both values, compared here. Other
          asserts are judged in the sandbox, so a program that reads the test code from its own process could
          forge them.
- stdio:  the program runs once per case with the case's stdin; printed output is compared here (trailing
          whitespace per line and trailing blank lines ignored).
Only plain builtin values cross the boundary (see `_launcher.encode`): objects with a custom `__eq__` or subclasses of
builtins never compare equal.

Verdicts: pass; fail with reason wrong_answer, timeout, runtime_error, memory, output_limit, syntax_error, no_code,
missing_entry_point, exited_early; error (sandbox_error, bad_test_spec), which callers retry.
"""

from __future__ import annotations

import ast
import json
import math
import re
from typing import Any

from distill_ray.verify._launcher import Opaque, contains_opaque, decode, encode
from distill_ray.verify.math_grader import answer_section
from distill_ray.verify.sandbox import RunResult, SandboxLimits, SandboxPool, shared_pool
from distill_ray.verify.verdict import Verdict, errored, failed, passed

_FENCE_RE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)```", re.S)


def extract_code(response: str) -> str | None:
    """The last fenced ```python (or unlabelled) block after the reasoning; None when there is none."""
    section = answer_section(response)
    if section is None:
        return None
    blocks = [(lang.lower(), body) for lang, body in _FENCE_RE.findall(section)]
    candidates = [body for lang, body in blocks if lang in ("python", "py", "python3", "")]
    if not candidates or not candidates[-1].strip():
        return None
    return candidates[-1]


# ------------------------------------------------------------------ comparisons (plain values only)


def strict_equal(actual: Any, expected: Any, atol: float = 0.0) -> bool:
    """Type-exact equality of decoded plain values; floats may differ by atol when atol > 0."""
    if isinstance(actual, Opaque) or isinstance(expected, Opaque):
        return False
    ta, te = type(actual), type(expected)
    if ta is not te:
        if atol and ta in (int, float) and te in (int, float):
            return abs(actual - expected) <= atol
        return False
    if ta is float:
        if math.isnan(actual) or math.isnan(expected):
            return math.isnan(actual) and math.isnan(expected)
        return actual == expected or (atol > 0 and abs(actual - expected) <= atol)
    if ta in (list, tuple):
        return len(actual) == len(expected) and all(strict_equal(a, e, atol) for a, e in zip(actual, expected))
    if ta is dict:
        if set(actual) != set(expected) or any(type(k) is not type(k) for k in actual):
            return False
        return all(strict_equal(actual[k], expected[k], atol) for k in expected)
    return actual == expected


def plain_equal(actual: Any, expected: Any) -> bool:
    """Python `==` on decoded plain values (what an `assert A == B` means), never true for an unsupported object."""
    if contains_opaque(actual) or contains_opaque(expected):
        return False
    try:
        return bool(actual == expected)
    except Exception:
        return False


# ------------------------------------------------------------------ test specs -> sandbox jobs


class BadTestSpec(ValueError):
    pass


def _parse_spec(tests_json: str) -> dict[str, Any]:
    try:
        spec = json.loads(tests_json) if isinstance(tests_json, str) else dict(tests_json)
    except (TypeError, ValueError) as exc:
        raise BadTestSpec("tests is not JSON: %s" % exc) from None
    if not isinstance(spec, dict) or spec.get("format") not in ("call", "assert", "pytest", "stdio"):
        raise BadTestSpec("unknown test format")
    return spec


def _assert_plan(asserts: list[str]) -> tuple[list[str], list[tuple[str, Any]]]:
    """Expressions for the sandbox and, per assert, how to judge: ("eq", literal|None) or ("truthy", None)."""
    expressions: list[str] = []
    plan: list[tuple[str, Any]] = []
    for line in asserts:
        try:
            node = ast.parse(line.strip()).body[0]
        except (SyntaxError, IndexError):
            raise BadTestSpec("unparsable assert: %r" % line[:80]) from None
        if not isinstance(node, ast.Assert):
            raise BadTestSpec("not an assert: %r" % line[:80])
        test = node.test
        if isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.Eq):
            left, right = test.left, test.comparators[0]
            literal = _literal(right)
            if literal is _NOT_LITERAL:
                literal, left, right = _literal(left), right, left
            if literal is not _NOT_LITERAL:
                expressions.append(ast.unparse(left))
                plan.append(("eq_literal", literal))
            else:
                expressions.append(ast.unparse(left))
                expressions.append(ast.unparse(right))
                plan.append(("eq_pair", None))
        elif _is_isclose(test) and len(test.args) == 2:
            # judged here: a program could have patched math.isclose inside the sandbox
            literal = _literal(test.args[1])
            expressions.append(ast.unparse(test.args[0]))
            if literal is _NOT_LITERAL:
                expressions.append(ast.unparse(test.args[1]))
            tolerances = {kw.arg: _literal(kw.value) for kw in test.keywords}
            if any(v is _NOT_LITERAL or not isinstance(v, (int, float)) for v in tolerances.values()):
                raise BadTestSpec("isclose tolerances must be literals: %r" % line[:80])
            plan.append(("isclose", (None if literal is _NOT_LITERAL else literal, tolerances)))
        else:
            expressions.append(ast.unparse(test))
            plan.append(("truthy", None))
    return expressions, plan


def _is_isclose(node: ast.AST) -> bool:
    if not isinstance(node, ast.Call):
        return False
    func = node.func
    return (isinstance(func, ast.Attribute) and func.attr == "isclose") or (
        isinstance(func, ast.Name) and func.id == "isclose")


_NOT_LITERAL = object()


def _literal(node: ast.AST) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NOT_LITERAL


def build_job(code: str, spec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(sandbox job, what the judge needs) for a program and a parsed test spec."""
    fmt = spec["format"]
    if fmt == "call":
        inputs = spec.get("inputs")
        outputs = spec.get("outputs")
        if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
            raise BadTestSpec("call spec needs inputs and outputs of equal length")
        if not all(isinstance(args, list) for args in inputs):
            raise BadTestSpec("each call input must be a list of arguments")
        job = {"format": "call", "code": code, "entry_point": spec.get("entry_point"),
               "inputs": [encode(tuple(args)) for args in inputs]}
        return job, {"kind": "call", "outputs": outputs, "atol": float(spec.get("atol") or 0)}
    if fmt == "assert":
        asserts = spec.get("asserts")
        if not isinstance(asserts, list) or not asserts:
            raise BadTestSpec("assert spec needs asserts")
        expressions, plan = _assert_plan(asserts)
        job = {"format": "call", "code": code, "entry_point": spec.get("entry_point"), "expressions": expressions,
               "inputs": [], "setup": spec.get("setup") or ""}
        return job, {"kind": "assert", "plan": plan}
    if fmt == "pytest":
        test_code = spec.get("test_code")
        try:
            tree = ast.parse(test_code or "")
        except SyntaxError:
            raise BadTestSpec("test_code does not parse") from None
        names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")]
        if not names:
            raise BadTestSpec("test_code has no test functions")
        job = {"format": "pytest", "code": code, "test_code": test_code, "tests": names}
        return job, {"kind": "pytest", "tests": names}
    cases = spec.get("cases")
    if not isinstance(cases, list) or not cases:
        raise BadTestSpec("stdio spec needs cases")
    job = {"format": "stdio", "code": code, "inputs": [str(c.get("stdin", "")) for c in cases]}
    return job, {"kind": "stdio", "outputs": [str(c.get("stdout", "")) for c in cases]}


# ------------------------------------------------------------------ judging a run

_EXCEPTION_REASONS = {
    "Timeout": "timeout",
    "MemoryError": "memory",
    "OutputLimit": "output_limit",
    "SystemExit": "exited_early",
    "RecursionError": "runtime_error",
}


def failure_from_run(run: RunResult) -> Verdict | None:
    """The verdict when the run itself went wrong (no usable report); None when the report can be judged."""
    if run.outcome == "infra_error":
        return errored("sandbox_error")
    if run.outcome == "timeout":
        return failed("timeout")
    if run.outcome == "output_limit":
        return failed("output_limit")
    report = run.report
    if report is None or run.outcome == "killed":
        if run.signal in (24, 9) and run.cpu_s >= 0.9 * (run.extra.get("cpu_s") or 0):
            return failed("timeout")  # SIGXCPU, or SIGKILL at the hard CPU limit
        if run.signal:
            return failed("crash")
        return failed("exited_early")
    stage = report.get("stage")
    if stage == "setup":
        return errored("sandbox_error")
    if stage == "compile":
        return failed("syntax_error")
    if stage == "load":
        error = report.get("error", "")
        if error == "missing_entry_point":
            return failed("missing_entry_point")
        return failed(_EXCEPTION_REASONS.get(error, "runtime_error"))
    if stage != "done":
        return failed("exited_early")
    return None


def _exception_reason(result: dict[str, Any]) -> str:
    return _EXCEPTION_REASONS.get(result.get("e", ""), "runtime_error")


def judge(run: RunResult, expect: dict[str, Any], code: str) -> Verdict:
    early = failure_from_run(run)
    if early is not None:
        return Verdict(early.verdict, early.reason, code)
    results = run.report.get("results")
    if not isinstance(results, list):
        return failed("exited_early", code)
    kind = expect["kind"]
    try:
        if kind == "call":
            outputs = expect["outputs"]
            for i, expected in enumerate(outputs):
                if i >= len(results):
                    return failed("incomplete", code)
                if "e" in results[i]:
                    return failed(_exception_reason(results[i]), code)
                if not strict_equal(decode(results[i]["v"]), expected, expect["atol"]):
                    return failed("wrong_answer", code)
            return passed("correct", code)
        if kind == "assert":
            i = 0
            for how, literal in expect["plan"]:
                width = 2 if how == "eq_pair" or (how == "isclose" and literal[0] is None) else 1
                chunk = results[i : i + width]
                i += width
                if len(chunk) < width:
                    return failed("incomplete", code)
                for r in chunk:
                    if "e" in r:
                        return failed(_exception_reason(r), code)
                values = [decode(r["v"]) for r in chunk]
                ok = (
                    _isclose(values, literal) if how == "isclose"
                    else plain_equal(values[0], literal) if how == "eq_literal"
                    else plain_equal(values[0], values[1]) if how == "eq_pair"
                    else type(values[0]) in (bool, int, str, list, tuple, dict, set, float) and bool(values[0])
                    and not contains_opaque(values[0])
                )
                if not ok:
                    return failed("wrong_answer", code)
            return passed("correct", code)
        if kind == "pytest":
            by_name = {r.get("name"): r for r in results}
            for name in expect["tests"]:
                r = by_name.get(name)
                if r is None:
                    return failed("incomplete", code)
                for left, right in r.get("checks", []):
                    if not plain_equal(decode(left), decode(right)):
                        return failed("wrong_answer", code)
                if not r.get("ok"):
                    reason = _exception_reason(r)
                    return failed("wrong_answer" if r.get("e") == "AssertionError" else reason, code)
            return passed("correct", code)
        outputs = expect["outputs"]
        for i, expected in enumerate(outputs):
            if i >= len(results):
                return failed("incomplete", code)
            if "e" in results[i]:
                return failed(_exception_reason(results[i]), code)
            if _normalize_output(decode(results[i]["v"])) != _normalize_output(expected):
                return failed("wrong_answer", code)
        return passed("correct", code)
    except (KeyError, TypeError, ValueError, IndexError, RecursionError):
        return failed("malformed_result", code)


def _isclose(values: list[Any], literal: tuple[Any, dict[str, float]]) -> bool:
    expected, tolerances = literal
    actual = values[0]
    if expected is None:
        expected = values[1]
    numbers = (int, float)
    if type(actual) not in numbers or type(expected) not in numbers:
        return False
    return math.isclose(actual, expected, rel_tol=tolerances.get("rel_tol", 1e-9),
                        abs_tol=tolerances.get("abs_tol", 0.0))


def _normalize_output(text: Any) -> str:
    if type(text) is not str:
        return "\x00not text"
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines)


def check_code(
    response: str,
    tests_json: str,
    *,
    pool: SandboxPool | None = None,
    limits: SandboxLimits | None = None,
) -> Verdict:
    """Extract the final python block of a response and judge it against the test spec (see the module docstring)."""
    code = extract_code(response)
    if code is None:
        return failed("no_code")
    return check_program(code, tests_json, pool=pool, limits=limits)


def check_program(
    code: str,
    tests_json: str,
    *,
    pool: SandboxPool | None = None,
    limits: SandboxLimits | None = None,
) -> Verdict:
    """Judge an already extracted program."""
    try:
        job, expect = build_job(code, _parse_spec(tests_json))
    except BadTestSpec as exc:
        return errored("bad_test_spec: %s" % exc, code)
    pool = pool or shared_pool()
    run = pool.run(job, limits)
    run.extra["cpu_s"] = (limits or pool.limits).as_dict()["cpu_s"]
    return judge(run, expect, code)
