"""MATH-500 scorer: grade sample responses against a dataset in the Hugging Face MATH-500 schema.

    distill-ray score math500 --samples S.jsonl [--dataset D.jsonl] --output O.json

S rows: {"unique_id", "response"}; D rows: {"problem", "solution", "answer", "subject", "level", "unique_id"}
(any number of rows).
Output: {"summary": {"n", "correct", "accuracy", "ci95", "format_failures", "reasons", ...}, "items": [{"unique_id",
"correct", "reason", "extracted"}, ...]} with one item per sample, in sample order. "format_failures" counts responses
with no gradable answer (`verdict.FORMAT_FAILURE_REASONS`, the one definition the sweep uses too: no box, an empty
box, reasoning never closed), kept apart from wrong answers.
Grader errors (a crashed worker) are retried twice and then scored as incorrect with reason "grader_error".

Not guaranteed: grading beyond `math_grader`'s rules (see its docstring).
"""

from __future__ import annotations

from typing import Any

from distill_ray.files import InputError
from distill_ray.verify.math_grader import MathGrader
from distill_ray.verify.mbppplus import read_numbered_rows
from distill_ray.verify.stats import wilson_interval
from distill_ray.verify.verdict import FORMAT_FAILURE_REASONS


def read_math500_answers(path: str) -> dict[str, dict[str, Any]]:
    """MATH-500 rows by unique_id from a local JSONL file (each with its "_line"), for `distill-ray score math500`."""
    problems = {}
    for row in read_numbered_rows(path, ("unique_id", "answer")):
        if not isinstance(row["answer"], str):
            raise InputError(path, "must be a string", row["_line"], "answer")
        problems[str(row["unique_id"])] = row
    return problems


def check_samples(path: str, samples: list[dict[str, Any]], problems: dict[str, dict[str, Any]]) -> None:
    for row in samples:
        if not isinstance(row["response"], str):
            raise InputError(path, "must be a string", row["_line"], "response")
        if str(row["unique_id"]) not in problems:
            raise InputError(path, f"{row['unique_id']!r} is not in the dataset", row["_line"], "unique_id")


def score_math500(samples: list[dict[str, Any]], problems: dict[str, dict[str, Any]], grader: MathGrader,
                  max_retries: int = 2) -> dict[str, Any]:
    pairs = [(row["response"], problems[str(row["unique_id"])]["answer"]) for row in samples]
    verdicts = grader.grade_many(pairs)
    for _ in range(max_retries):
        again = [i for i, v in enumerate(verdicts) if v.verdict == "error"]
        if not again:
            break
        for i, v in zip(again, grader.grade_many([pairs[i] for i in again])):
            verdicts[i] = v
    items = []
    reasons: dict[str, int] = {}
    for row, verdict in zip(samples, verdicts):
        reason = "grader_error" if verdict.verdict == "error" else verdict.reason
        reasons[reason] = reasons.get(reason, 0) + 1
        items.append({"unique_id": row["unique_id"], "correct": verdict.verdict == "pass", "reason": reason,
                      "extracted": verdict.extracted})
    n = len(items)
    correct = sum(item["correct"] for item in items)
    low, high = wilson_interval(correct, n)
    summary = {
        "n": n,
        "correct": correct,
        "accuracy": correct / n if n else 0.0,
        "ci95": [low, high],
        "format_failures": sum(c for r, c in reasons.items() if r in FORMAT_FAILURE_REASONS),
        "reasons": dict(sorted(reasons.items())),
    }
    return {"summary": summary, "items": items}
