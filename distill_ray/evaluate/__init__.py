"""Evaluation stage: score a base model or an adapter checkpoint on the sweep's benchmarks.

    from distill_ray.evaluate import evaluate_checkpoint, load_benchmark
    scores = evaluate_checkpoint(student_cfg, adapter_path, benchmarks, evaluation_cfg, step=100, samples=5000,
                                 output_dir="runs/x/eval/step-100")

Every benchmark is scored by the same judges that verify teacher traces (`distill_ray.verify`), so MATH-500 and the
built-in mini-math use one math grader and MBPP+ and mini-code one sandbox. Each score separates "wrong answer" from
"no answer in the expected format" (no `\\boxed{}`, no python block): a format failure is counted in
`format_failures` as well as being wrong. Responses and per-item verdicts are written next to the scores so any number
in a report can be traced to the text that produced it. Intervals are 95% Wilson intervals over items.
"""

from __future__ import annotations

import json
import os
from typing import Any

from distill_ray.config import BenchmarkConfig, EvaluationConfig, StudentConfig
from distill_ray.records import BenchmarkScore, Problem
from distill_ray.stats import wilson_interval

FORMAT_FAILURE_REASONS = frozenset({"no_box", "empty_box", "multiple_boxes", "no_code"})


def load_benchmark(bench: BenchmarkConfig) -> list[Problem]:
    """The benchmark's items as Problem rows; a `subset` takes a seeded sample of that many."""
    import random

    if bench.name in ("mini-math", "mini-code"):
        from distill_ray.problems.builtin import make_problems

        return make_problems(bench.domain, bench.name, bench.subset or 100, bench.seed)
    from distill_ray.problems import benchmarks as public

    items = public.load_math500(bench.path) if bench.name == "math500" else public.load_mbppplus(bench.path)
    if bench.subset and bench.subset < len(items):
        items = random.Random(bench.seed).sample(items, bench.subset)
    return items


def score_responses(problems: list[Problem], responses: list[str], *,
                    allow_network_risk: bool = False) -> list[dict[str, Any]]:
    """Judge each response against its problem; one dict per item with the verdict, reason and extracted answer."""
    from distill_ray.verify import verify_rows
    from distill_ray.verify.sandbox import shared_pool

    rows = [{"domain": p["domain"], "text": r, "answer": p["answer"], "tests": p["tests"], "problem_id": p["id"]}
            for p, r in zip(problems, responses, strict=True)]
    return verify_rows(rows, pool=shared_pool(allow_network_risk))


def summarise(benchmark: str, items: list[dict[str, Any]], *, step: int, samples: int) -> BenchmarkScore:
    judged = [item for item in items if item["verdict"] != "error"]
    n = len(judged)
    correct = sum(1 for item in items if item["verdict"] == "pass")
    low, high = wilson_interval(correct, n)
    return BenchmarkScore(
        benchmark=benchmark, step=step, samples=samples, n=n, correct=correct,
        accuracy=correct / n if n else 0.0, ci95_low=low, ci95_high=high,
        format_failures=sum(1 for item in judged if item["reason"] in FORMAT_FAILURE_REASONS),
        errors=len(items) - n,
    )


def make_engine(student: StudentConfig, evaluation: EvaluationConfig) -> Any:
    """A loaded generation engine for `student` that evaluates any of its adapters, one call at a time."""
    from distill_ray.evaluate.actors import EvalEngine

    return EvalEngine(student, backend=evaluation.backend, batch_size=evaluation.batch_size,
                      max_batch_tokens=evaluation.max_batch_tokens)


def evaluate_checkpoint(
    student: StudentConfig,
    adapter_path: str | None,
    benchmarks: dict[str, list[Problem]],
    evaluation: EvaluationConfig,
    *,
    step: int,
    samples: int,
    output_dir: str | None = None,
    allow_network_risk: bool = False,
    engine: Any | None = None,
) -> list[BenchmarkScore]:
    """Generate greedily on every benchmark and score; writes responses.jsonl and scores.json when output_dir is set.

    A finished evaluation (scores.json present) is read back instead of recomputed, so resumed sweeps never redo one.
    Pass an `engine` (from `make_engine`, or anything with the same `generate`) to evaluate many checkpoints on one
    loaded base model.
    """
    if output_dir and os.path.exists(os.path.join(output_dir, "scores.json")):
        with open(os.path.join(output_dir, "scores.json"), encoding="utf-8") as handle:
            return json.load(handle)
    if engine is None:
        engine = make_engine(student, evaluation)

    def generate(prompts: list[str]) -> list[str]:
        return engine.generate(prompts, max_new_tokens=evaluation.max_new_tokens, adapter_path=adapter_path)

    scores: list[BenchmarkScore] = []
    records: list[dict[str, Any]] = []
    for name, problems in benchmarks.items():
        responses = generate([p["prompt"] for p in problems])
        items = score_responses(problems, responses, allow_network_risk=allow_network_risk)
        scores.append(summarise(name, items, step=step, samples=samples))
        for problem, response, item in zip(problems, responses, items, strict=True):
            records.append({"benchmark": name, "problem_id": problem["id"], "response": response,
                            "verdict": item["verdict"], "reason": item["reason"], "extracted": item["extracted"]})
    if output_dir:
        _write_atomically(os.path.join(output_dir, "responses.jsonl"),
                          "".join(json.dumps(r) + "\n" for r in records))
        _write_atomically(os.path.join(output_dir, "scores.json"), json.dumps(scores, indent=1))
    return scores


def _write_atomically(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)
