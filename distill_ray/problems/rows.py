"""Row mapping: one dataset row, through a source's field mapping, to a `Problem` (or the reason it cannot be one).

What it does
  `to_problem(row, index, source, domain, source_str)` reads the mapped fields (dotted or indexed paths, `get_field`),
  builds the prompt (problem text, for code the sentence naming the function the tests call, then the domain's
  final-format instruction), the gold answer (optionally the last \\boxed{} of a solution field) or the test spec
  (verify/code_spec.py). A row that cannot be mapped gives `Invalid(reason, detail)`, counted by the reader.

How to run it
  to_problem({"question": "1+1?", "answer": "2"}, 0, source, "math", "p.jsonl")

What it does not guarantee
  That the answer or tests are right; only that they are present and have a usable shape.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from distill_ray.problems.schema import DEFAULT_CODE_INSTRUCTION, DEFAULT_MATH_INSTRUCTION, ProblemSourceConfig
from distill_ray.records import Problem
from distill_ray.verify.code_spec import build_test_spec, strip_solution_imports, value_text


@dataclass
class Invalid:
    reason: str
    detail: str


def get_field(row: Mapping[str, Any], path: str) -> Any:
    """A possibly nested value: "a.b" indexes dicts, "a.0.b" also indexes lists; None when any step is missing."""
    value: Any = row
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, (list, tuple)) and part.lstrip("-").isdigit():
            i = int(part)
            value = value[i] if -len(value) <= i < len(value) else None
        else:
            return None
        if value is None:
            return None
    return value



def last_boxed(text: str) -> str:
    """The content of the last \\boxed{...} (or \\fbox{...}) in `text`, braces balanced; "" when there is none."""
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return ""
    brace = text.find("{", start)
    if brace < 0:
        return ""
    depth = 0
    for i in range(brace, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[brace + 1 : i].strip()
    return ""


def to_problem(
    row: Mapping[str, Any], index: int, source: ProblemSourceConfig, domain: str, source_str: str
) -> tuple[Problem, str | None] | Invalid:
    mapping = source.mapping
    assert mapping is not None
    row_id = value_text(get_field(row, mapping.id)) if mapping.id else str(index)
    if not row_id:
        return Invalid("missing_id", f"empty {mapping.id!r}")
    text = value_text(get_field(row, mapping.problem))
    if not text:
        return Invalid("missing_problem", f"empty {mapping.problem!r}")
    reference = value_text(get_field(row, mapping.reference_solution)) if mapping.reference_solution else ""
    if domain == "math":
        answer = value_text(get_field(row, mapping.answer or ""))
        if mapping.answer_extract == "last_boxed":
            answer = last_boxed(answer)
        if not answer:
            return Invalid("missing_answer", f"no answer in {mapping.answer!r}")
        instruction = source.instruction if source.instruction is not None else DEFAULT_MATH_INSTRUCTION
        prompt = f"{text}\n\n{instruction}".strip()
        problem = Problem(
            id=row_id, domain="math", prompt=prompt, answer=answer, tests="", source=source_str, split="train"
        )
        return problem, None
    entry_point = value_text(get_field(row, mapping.entry_point)) if mapping.entry_point else ""
    setup = value_text(get_field(row, mapping.setup)) if mapping.setup else ""
    try:
        spec = build_test_spec(get_field(row, mapping.tests or ""), mapping.test_format or "", entry_point, setup)
    except ValueError as exc:
        return Invalid("bad_tests", f"{mapping.tests!r}: {exc}")
    instruction = source.instruction if source.instruction is not None else DEFAULT_CODE_INSTRUCTION
    names: list[str] = [entry_point] if entry_point else []
    if spec["format"] == "pytest" and not entry_point:
        names = strip_solution_imports(value_text(get_field(row, mapping.tests or "")))[1]
    requirement = code_requirement(spec, reference, names) if source.signature_hint else ""
    prompt = "\n\n".join(part for part in (text, requirement, instruction) if part)
    problem = Problem(
        id=row_id, domain="code", prompt=prompt, answer="", tests=json.dumps(spec), source=source_str, split="train"
    )
    return problem, reference or None



def function_signature(reference: str, name: str) -> str:
    """`def name(args) -> ret` from a reference solution's top-level function, or "" when it has none."""
    try:
        tree = ast.parse(reference)
    except (SyntaxError, ValueError):
        return ""
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name:
            returns = f" -> {ast.unparse(node.returns)}" if node.returns else ""
            keyword = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
            return f"{keyword} {name}({ast.unparse(node.args)}){returns}"
    return ""


def code_requirement(spec: Mapping[str, Any], reference: str = "", names: Sequence[str] = ()) -> str:
    """One sentence telling the solver what the tests call, so that a correct solution can be tested at all.

    `names` are the functions pytest-style tests use when the spec has no entry point (see strip_solution_imports).
    """
    fmt = spec.get("format")
    if fmt == "stdio":
        return "Your program must read its input from standard input and print the answer to standard output."
    names = [str(spec["entry_point"])] if spec.get("entry_point") else list(names)
    if not names:
        return ""
    if len(names) == 1:
        signature = function_signature(reference, names[0]) if reference else ""
        if signature:
            return f"Your code must define the function `{signature}`, which the tests call."
        return f"Your code must define a function named `{names[0]}`, which the tests call."
    return "Your code must define " + ", ".join(f"`{n}`" for n in names) + ", which the tests use."

