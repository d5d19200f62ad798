"""Judging benchmark items: one entry point for the sweep's evaluation and for rescoring stored responses.

    from distill_ray.verify.items import judge_items
    items = judge_items(problems, responses, judge="evalplus", pool=pool)
    # [{"verdict", "reason", "extracted", "base_status", "plus_status"}, ...] in input order

Judges (the `judge` of a benchmark in distill_ray/benchmarks.py): "math" grades the last box (math_grader), "code"
runs the problem's test spec in the sandbox (code.check_code), "evalplus" runs MBPP+'s base and plus inputs with
evalplus's rules (mbppplus.judge_responses, the judge of `distill-ray score mbppplus`). `judge=None` picks by each
problem's domain and test-spec format. For judges without plus tests, `plus_status` is None and `base_status` is the
verdict ("pass" or "fail"). Infrastructure errors are retried (verify_rows, run_base_plus) and stay "error".

Not guaranteed: anything beyond the judges' own rules (see their modules).
"""

from __future__ import annotations

import json
from typing import Any

from distill_ray.records import Problem
from distill_ray.verify.math_grader import MathGrader
from distill_ray.verify.sandbox import SandboxPool


def _is_evalplus(problem: Problem) -> bool:
    if problem["domain"] != "code" or not problem["tests"]:
        return False
    try:
        return json.loads(problem["tests"]).get("format") == "evalplus"
    except (ValueError, AttributeError):
        return False


def judge_items(problems: list[Problem], responses: list[str], *, judge: str | None = None,
                pool: SandboxPool | None = None, grader: MathGrader | None = None) -> list[dict[str, Any]]:
    """One verdict dict per (problem, response), in input order (see the module docstring)."""
    from distill_ray.verify.batch import verify_rows
    from distill_ray.verify.mbppplus import judge_responses
    from distill_ray.verify.sandbox import shared_pool

    if len(problems) != len(responses):
        raise ValueError(f"{len(problems)} problems but {len(responses)} responses")
    pool = pool or shared_pool()
    plus = [i for i, p in enumerate(problems) if (judge == "evalplus" if judge else _is_evalplus(p))]
    if judge == "evalplus" and not all(_is_evalplus(problems[i]) for i in plus):
        raise ValueError("the evalplus judge needs problems with an 'evalplus' test spec (load_mbppplus_evalplus)")
    out: list[dict[str, Any] | None] = [None] * len(problems)
    if plus:
        specs = [json.loads(problems[i]["tests"]) for i in plus]
        for i, item in zip(plus, judge_responses([responses[i] for i in plus], specs, pool)):
            out[i] = item
    rest = [i for i in range(len(problems)) if out[i] is None]
    rows = [{"domain": problems[i]["domain"], "text": responses[i], "answer": problems[i]["answer"],
             "tests": problems[i]["tests"], "problem_id": problems[i]["id"]} for i in rest]
    for i, row in zip(rest, verify_rows(rows, pool=pool, grader=grader)):
        out[i] = {"verdict": row["verdict"], "reason": row["reason"], "extracted": row["extracted"],
                  "base_status": "pass" if row["verdict"] == "pass" else "fail", "plus_status": None}
    return out  # type: ignore[return-value]
