"""Fixtures for the problem-source tests: small rows written here in the real datasets' schemas, and a fake sandbox.

The rows are the project's own (no dataset text is copied); only the field names and value shapes follow the public
datasets: NuminaMath-1.5 (math), OpenCoder opc-sft-stage2 educational_instruct (code), MATH-500 and MBPP+.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

# Nothing in these tests may reach the hub; set before anything imports `datasets`.
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")



def numina_row(problem: str, answer: str, **overrides) -> dict:
    row = {
        "problem": problem,
        "solution": f"Working it out step by step gives $\\boxed{{{answer}}}$.",
        "answer": answer,
        "problem_type": "Algebra",
        "question_type": "math-word-problem",
        "problem_is_valid": "Yes",
        "solution_is_valid": "Yes",
        "source": "olympiads",
        "synthetic": False,
    }
    row.update(overrides)
    return row


def numina_rows(count: int = 30) -> list[dict]:
    """`count` valid, distinct math rows, then rows each filter must remove."""
    rows = [
        numina_row(
            f"A jar holds {k} red and {2 * k + 1} blue beads. How many beads are in the jar in total?", str(3 * k + 1)
        )
        for k in range(1, count + 1)
    ]
    rows += [
        numina_row("Prove that the sum of two odd integers is even.", "proof", question_type="proof"),
        numina_row("Find all primes p such that p squared plus two is prime.", "notfound"),
        numina_row("Which option is largest: (A) 2 (B) 3 (C) 5?", "C", question_type="MCQ"),
        numina_row("A rewritten MATH-style problem about 7 cats and 3 dogs.", "10", synthetic=True),
        numina_row("An ill-posed problem missing its data about a triangle.", "4", problem_is_valid="No"),
    ]
    return rows


def opencoder_row(seq_id: int, name: str, body: str, asserts: list[str], instruction: str) -> dict:
    code = f"def {name}(nums, k):\n{body}\n"
    return {
        "seq_id": seq_id,
        "instruction": instruction,
        "output": f"Here is the function:\n```python\n{code}```",
        "code": code,
        "entry_point": name,
        "testcase": asserts,
    }


def opencoder_rows() -> list[dict]:
    rows = []
    for i in range(1, 9):
        name = f"add_offset_{i}"
        rows.append(
            opencoder_row(
                1000 + i,
                name,
                f"    return [x + k + {i} for x in nums]",
                [f"assert {name}([1, 2], 0) == [{1 + i}, {2 + i}]", f"assert {name}([], 5) == []"],
                f"Write a python function that adds k plus {i} to every element of a list of integers.",
            )
        )
    # A row whose reference solution is wrong (off by one): the reference filter must drop it.
    rows.append(
        opencoder_row(
            2000,
            "count_above",
            "    return sum(1 for x in nums if x >= k)",
            ["assert count_above([1, 5, 7], 5) == 1", "assert count_above([], 0) == 0"],
            "Write a python function that counts the elements strictly greater than k.",
        )
    )
    return rows


def math500_row(uid: str, problem: str, answer: str) -> dict:
    return {
        "problem": problem,
        "solution": f"So the answer is $\\boxed{{{answer}}}$.",
        "answer": answer,
        "subject": "Algebra",
        "level": 2,
        "unique_id": uid,
    }


def mbppplus_row(task: int, text: str, name: str, asserts: list[str], setup: str = "") -> dict:
    return {
        "task_id": f"Mbpp/{task}",
        "prompt": f'"""\n{text}\n{asserts[0]}\n"""\n',
        "entry_point": name,
        "canonical_solution": f"\ndef {name}(a):\n  return a\n",
        "base_input": [[1]],
        "atol": 0,
        "plus_input": [[2]],
        "contract": "",
        "assertion": (setup + "\n\n" if setup else "\n") + "\n".join(asserts) + "\n",
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write_parquet(path: Path, rows: list[dict]) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def fake_check_code(response: str, tests_json: str) -> SimpleNamespace:
    """In-process stand-in for the sandbox (assert specs only): good enough to test the filter's bookkeeping."""
    match = re.search(r"```python\n(.*?)```", response, re.S)
    if match is None:
        return SimpleNamespace(verdict="fail", reason="no_code")
    spec = json.loads(tests_json)
    namespace: dict = {}
    try:
        exec(spec.get("setup", ""), namespace)
        exec(match.group(1), namespace)
        for line in spec["asserts"]:
            exec(line, namespace)
    except AssertionError:
        return SimpleNamespace(verdict="fail", reason="wrong_answer")
    except Exception as exc:  # the reference crashed: a failure of the reference, not of the sandbox
        return SimpleNamespace(verdict="fail", reason=type(exc).__name__)
    return SimpleNamespace(verdict="pass", reason="correct")


@pytest.fixture
def fake_checker():
    return fake_check_code


@pytest.fixture
def schemas() -> SimpleNamespace:
    """The row builders and writers above, for tests (conftest modules are not imported by tests directly)."""
    return SimpleNamespace(
        numina_row=numina_row,
        numina_rows=numina_rows,
        opencoder_row=opencoder_row,
        opencoder_rows=opencoder_rows,
        math500_row=math500_row,
        mbppplus_row=mbppplus_row,
        write_jsonl=write_jsonl,
        write_parquet=write_parquet,
    )
