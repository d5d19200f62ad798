"""Verifiability checks: a math gold answer the judge can parse; a code reference solution that passes its tests.

What it does
  `answer_parses(answer)` asks math-verify whether the gold answer is something it can compare. `reference_verdict`
  runs a reference solution against its test spec in the sandbox ("pass", "fail", or "error" after retries: an
  infrastructure error is never read as a failure). `select_verifiable` walks a pool in order and keeps rows that
  pass, until n are kept, `workers` sandbox checks at a time.

How to run it
  kept, outcomes = select_verifiable(pool, references, n=100, check_answers=True)

What it does not guarantee
  That a parseable answer is right, or that passing tests are sufficient tests.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from distill_ray.records import Problem


def answer_parses(answer: str) -> bool:
    """Whether math-verify turns the gold answer into something it can compare (not only a raw string)."""
    from math_verify import parse  # heavy import (sympy); only paid when math answers are checked

    text = answer.strip()
    if not text:
        return False
    if "\\boxed" not in text:
        # Boxed, as a response would carry it; "$...$" would break on answers holding "\\$" (MATH's "\\$18.90").
        text = f"\\boxed{{{text}}}"
    # math-verify's timeout uses SIGALRM, which only the main thread may set.
    timeout = 5 if threading.current_thread() is threading.main_thread() else None
    try:
        parsed = parse(text, parsing_timeout=timeout)
    except Exception:  # a parser crash means the judge could not use this answer either
        return False
    return any(not isinstance(item, str) for item in parsed)


def _default_checker() -> Callable[[str, str], Any]:
    from distill_ray.verify import check_code  # the sandbox; imported late so sources work without it

    return check_code


def reference_verdict(reference: str, tests_json: str, checker: Callable[[str, str], Any], *, retries: int = 2) -> str:
    """ "pass", "fail" or "error" for a reference solution; infrastructure errors are retried, never read as fail."""
    response = f"```python\n{reference.rstrip()}\n```"
    verdict = "error"
    for _ in range(retries + 1):
        result = checker(response, tests_json)
        verdict = str(getattr(result, "verdict", result))
        if verdict != "error":
            return verdict
    return verdict


def select_verifiable(
    problems: list[Problem],
    references: Mapping[str, str],
    *,
    n: int | None,
    check_answers: bool,
    reference_checker: Callable[[str, str], Any] | None = None,
    workers: int = 2,
    batch: int = 64,
) -> tuple[list[Problem], list[str]]:
    """Walk `problems` in order, keeping those that pass the checks, until `n` are kept.

    Returns the kept problems and one outcome per input: "kept", "unused" (after the n-th kept),
    "unparseable_answer", "failing_reference" or "reference_error". Reference checks run `workers` at a time; the
    outcome of a row never depends on the batch size, because rows after the n-th kept are "unused" whatever their
    verdict.
    """
    outcomes = ["unused"] * len(problems)
    kept: list[Problem] = []
    checker = reference_checker
    if references and checker is None:
        checker = _default_checker()
    pool = ThreadPoolExecutor(max_workers=max(1, workers)) if references else None
    try:
        start = 0
        while start < len(problems) and (n is None or len(kept) < n):
            chunk = list(range(start, min(len(problems), start + batch)))
            start = chunk[-1] + 1
            verdicts: dict[int, str] = {}
            for i in chunk:
                p = problems[i]
                if check_answers and p["domain"] == "math" and not answer_parses(p["answer"]):
                    verdicts[i] = "unparseable_answer"
            to_run = [i for i in chunk if i not in verdicts and problems[i]["id"] in references]
            if to_run:
                assert pool is not None and checker is not None
                results = pool.map(
                    lambda i: reference_verdict(references[problems[i]["id"]], problems[i]["tests"], checker), to_run
                )
                for i, verdict in zip(to_run, results, strict=True):
                    if verdict != "pass":
                        verdicts[i] = "failing_reference" if verdict == "fail" else "reference_error"
            for i in chunk:
                if n is not None and len(kept) >= n:
                    break
                outcomes[i] = verdicts.get(i, "kept")
                if outcomes[i] == "kept":
                    kept.append(problems[i])
    finally:
        if pool is not None:
            pool.shutdown()
    return kept, outcomes

