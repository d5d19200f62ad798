"""The two evaluation sets as `Problem` rows: MATH-500 and MBPP+ (for decontamination and for evaluation).

What it does
  `load_math500(path)` reads the Hugging Face MATH-500 schema (problem, solution, answer, subject, level, unique_id)
  from JSONL, JSON or Parquet; id = unique_id, prompt = problem + the \\boxed{} instruction, answer = answer.
  `load_mbppplus(path)` reads evalplus's MbppPlus release (.jsonl or .jsonl.gz); id = task_id, prompt = the task
  text with its example assert (as MBPP shows it) + the code-block instruction, tests = an "assert" spec built from
  the `assertion` field (its imports become setup), entry point from `entry_point`. `load_mbppplus_raw` returns the
  rows untouched (plus inputs, contracts, atol) for evalplus-style scoring. `load_mbppplus` (base asserts only) serves
  decontamination; the sweep evaluates with `load_mbppplus_evalplus`: same prompts, tests = an "evalplus" spec with
  base and plus inputs, judged by `verify.mbppplus.judge_responses` (the judge of `distill-ray score mbppplus`).
  With `path=None` the pinned public file is downloaded once into the cache (`cache_dir`, else
  $DISTILL_RAY_CACHE/benchmarks, else ~/.cache/distill_ray/benchmarks) and checked against its sha256.

How to run it
  load_math500("/data/math500.jsonl"); load_mbppplus(None)   # the second downloads MbppPlus v0.2.0 once

What it does not guarantee
  The MATH-500 pin is the sha256 of the hub's test.jsonl at the pinned revision as copied to this project's shared
  benchmark folder; if the hub ever serves different bytes at that revision the download fails closed (pass a local
  path instead). Bad rows raise `ProblemSourceError` naming the file, the line and the field.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from distill_ray.files import InputError, iter_jsonl
from distill_ray.pinned import MATH500_FILE, MBPPPLUS_FILE, PinnedFile, fetch_pinned
from distill_ray.problems.schema import DEFAULT_CODE_INSTRUCTION, DEFAULT_MATH_INSTRUCTION, ProblemSourceError
from distill_ray.records import Problem
from distill_ray.verify.code_spec import build_test_spec

MATH500_FIELDS = ("problem", "solution", "answer", "subject", "level", "unique_id")
MBPPPLUS_FIELDS = ("task_id", "prompt", "entry_point", "assertion")


def _read_rows(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line or row number, row) of a JSONL (optionally gzipped), JSON list or Parquet file."""
    name = path.name
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        return list(enumerate(pq.read_table(path).to_pylist(), 1))
    if name.endswith(".json"):
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if text.lstrip().startswith("["):
            return list(enumerate(json.loads(text), 1))
    try:
        return list(iter_jsonl(path))
    except InputError as exc:  # the loaders' callers catch ProblemSourceError; same file:line: reason message
        raise ProblemSourceError(str(exc)) from None


def _require(path: Path, lineno: int, row: Any, fields: tuple[str, ...]) -> None:
    if not isinstance(row, dict):
        raise ProblemSourceError(f"{path}:{lineno}: a row must be a JSON object")
    for name in fields:
        if name not in row or row[name] is None:
            raise ProblemSourceError(f"{path}:{lineno}: missing field {name!r}")


def _resolve(path: str | None, pinned: PinnedFile, cache_dir: str | None) -> Path:
    if path is None:
        return fetch_pinned(pinned, cache_dir)
    resolved = Path(os.path.expanduser(path))
    if not resolved.is_file():
        raise ProblemSourceError(f"{resolved}: no such file")
    return resolved


def load_math500(path: str | None = None, *, cache_dir: str | None = None) -> list[Problem]:
    """MATH-500 (or any file in its schema) as math Problem rows with split "math500"."""
    resolved = _resolve(path, MATH500_FILE, cache_dir)
    source = "hf:HuggingFaceH4/MATH-500:test" if path is None else str(resolved)
    problems: list[Problem] = []
    seen: set[str] = set()
    for lineno, row in _read_rows(resolved):
        _require(resolved, lineno, row, ("problem", "answer", "unique_id"))
        uid = str(row["unique_id"])
        if uid in seen:
            raise ProblemSourceError(f"{resolved}:{lineno}: field 'unique_id': {uid!r} repeats an earlier row")
        seen.add(uid)
        problems.append(
            Problem(
                id=uid,
                domain="math",
                prompt=f"{str(row['problem']).strip()}\n\n{DEFAULT_MATH_INSTRUCTION}",
                answer=str(row["answer"]).strip(),
                tests="",
                source=source,
                split="math500",
            )
        )
    return problems


def load_mbppplus_raw(path: str | None = None, *, cache_dir: str | None = None) -> list[dict[str, Any]]:
    """MBPP+ rows exactly as released (task_id, prompt, entry_point, canonical_solution, base_input, plus_input,
    atol, contract, assertion), for scorers that need the plus inputs."""
    resolved = _resolve(path, MBPPPLUS_FILE, cache_dir)
    rows = []
    for lineno, row in _read_rows(resolved):
        _require(resolved, lineno, row, MBPPPLUS_FIELDS)
        rows.append(row)
    return rows


def mbpp_task_text(prompt: str) -> str:
    """MBPP+'s prompt without its docstring quotes: the task sentence and the example assert."""
    text = prompt.strip()
    for quote in ('"""', "'''"):
        if text.startswith(quote) and text.endswith(quote) and len(text) >= 6:
            text = text[3:-3]
    return text.strip()


def load_mbppplus(path: str | None = None, *, cache_dir: str | None = None) -> list[Problem]:
    """MBPP+ (or any file in its schema) as code Problem rows with split "mbppplus" and assert-format tests."""
    resolved = _resolve(path, MBPPPLUS_FILE, cache_dir)
    source = "evalplus:MbppPlus-v0.2.0" if path is None else str(resolved)
    problems: list[Problem] = []
    for lineno, row in _read_rows(resolved):
        _require(resolved, lineno, row, MBPPPLUS_FIELDS)
        try:
            spec = build_test_spec(str(row["assertion"]), "assert", str(row["entry_point"]))
        except ValueError as exc:
            raise ProblemSourceError(f"{resolved}:{lineno}: field 'assertion': {exc}") from None
        problems.append(_mbppplus_problem(row, spec, source))
    return problems


def load_mbppplus_evalplus(path: str | None = None, *, cache_dir: str | None = None) -> list[Problem]:
    """MBPP+ as the sweep evaluates it: the same prompts as `load_mbppplus`, tests = an "evalplus" spec (base and plus
    inputs, canonical solution, atol) judged by `verify.mbppplus.judge_responses`, the judge of `score mbppplus`."""
    from distill_ray.verify.mbppplus import EVALPLUS_SPEC_FIELDS, evalplus_spec

    resolved = _resolve(path, MBPPPLUS_FILE, cache_dir)
    source = "evalplus:MbppPlus-v0.2.0" if path is None else str(resolved)
    problems: list[Problem] = []
    for lineno, row in _read_rows(resolved):
        _require(resolved, lineno, row, EVALPLUS_SPEC_FIELDS)
        for name in ("base_input", "plus_input"):
            if not isinstance(row[name], list) and row[name] != {}:
                raise ProblemSourceError(f"{resolved}:{lineno}: field {name!r} must be a list")
        problems.append(_mbppplus_problem(row, evalplus_spec(row), source))
    return problems


def _mbppplus_problem(row: dict[str, Any], tests: dict[str, Any], source: str) -> Problem:
    """One MBPP+ task as a code problem: the task text and our code instruction as the prompt, `tests` as its spec."""
    return Problem(id=str(row["task_id"]), domain="code",
                   prompt=f"{mbpp_task_text(str(row['prompt']))}\n\n{DEFAULT_CODE_INSTRUCTION}", answer="",
                   tests=json.dumps(tests), source=source, split="mbppplus")
