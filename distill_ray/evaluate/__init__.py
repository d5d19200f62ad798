"""Evaluation stage: score a base model or an adapter checkpoint on the sweep's benchmarks.

    from distill_ray.evaluate import evaluate_checkpoint, load_benchmark
    scores = evaluate_checkpoint(student_cfg, adapter_path, benchmarks, evaluation_cfg, step=100, samples=5000,
                                 output_dir="runs/x/eval/step-100", base_responses="runs/x/base/s/responses.jsonl")

What a benchmark is (loader, judge) comes from the registry (distill_ray/benchmarks.py). Every benchmark is scored by
the judges that verify teacher traces (`distill_ray.verify`): MATH-500 and mini-math by the last-box math grader,
mini-code by the sandboxed test-spec judge, and MBPP+ by evalplus's base and plus inputs through the same function as
`distill-ray score mbppplus` (an item passes when both pass; `base_correct` keeps MBPP's base-only count). Each score
names the engine that produced it (`environment`: evaluate.fingerprint). Each score
separates "wrong answer" from "no answer in the expected format" (`verify.verdict.FORMAT_FAILURE_REASONS`): a format
failure is counted in `format_failures` as well as being wrong. Each response is written to responses.jsonl as a
`records.EvalItem` (verdict, base/plus status, finish reason, generated tokens) next to scores.json, so any number in a
report can be traced to the text that produced it, and rescored later (`stages.rescore`). Intervals are 95% Wilson
intervals over items. With `base_responses`, a checkpoint that answers like the base model fails (`evaluate.parity`).

Not guaranteed: bit-identical responses across backends or hardware (see backends.py).
"""

from __future__ import annotations

import json
import os
from typing import Any

from distill_ray.benchmarks import BENCHMARKS, get_benchmark
from distill_ray.config import BenchmarkConfig, EvaluationConfig, StudentConfig
from distill_ray.evaluate.backends import Generation, GenerationEngine
from distill_ray.files import read_json, write_text
from distill_ray.records import BenchmarkScore, EvalItem, Problem
from distill_ray.stats import wilson_interval
from distill_ray.verify.verdict import FORMAT_FAILURE_REASONS

# What an evaluation leaves in its output folder (the caller chooses the folder; experiment.py reads these names).
RESPONSES = "responses.jsonl"
SCORES = "scores.json"
BASE_RECHECK = "base_recheck.json"  # a base model's folder: its end-of-sweep re-scoring (evaluate.pool)


def load_benchmark(bench: BenchmarkConfig) -> list[Problem]:
    """The benchmark's items as Problem rows (its loader in the registry); a `subset` takes a seeded sample (file
    benchmarks) or sets how many are generated (built-in ones)."""
    import random

    entry = get_benchmark(bench.name)
    load = entry.load_function()
    if entry.generated:
        return load(bench.subset or entry.items, bench.seed)
    items = load(bench.path)
    if bench.subset and bench.subset < len(items):
        items = random.Random(bench.seed).sample(items, bench.subset)
    return items


def score_responses(problems: list[Problem], responses: list[str], *, allow_network_risk: bool = False,
                    benchmark: str | None = None) -> list[dict[str, Any]]:
    """Judge each response against its problem with the benchmark's judge (the registry's; without `benchmark`, by
    each problem's test spec): one dict per item with verdict, reason, extracted, base_status and plus_status."""
    from distill_ray.verify.items import judge_items
    from distill_ray.verify.sandbox import shared_pool

    entry = BENCHMARKS.get(benchmark) if benchmark else None
    return judge_items(problems, responses, judge=entry.judge if entry else None,
                       pool=shared_pool(allow_network_risk))


def summarise(benchmark: str, items: list[dict[str, Any]], *, step: int, samples: int) -> BenchmarkScore:
    """The benchmark's score from its judged items (EvalItem rows or judge_items dicts)."""
    judged = [item for item in items if item["verdict"] != "error"]
    n = len(judged)
    correct = sum(1 for item in judged if item["verdict"] == "pass")
    low, high = wilson_interval(correct, n)
    return BenchmarkScore(
        benchmark=benchmark, step=step, samples=samples, n=n, correct=correct,
        accuracy=correct / n if n else 0.0, ci95_low=low, ci95_high=high,
        format_failures=sum(1 for item in judged if item["reason"] in FORMAT_FAILURE_REASONS),
        errors=len(items) - n,
        base_correct=sum(1 for item in judged if item.get("base_status", item["verdict"]) == "pass"),
        length_capped=sum(1 for item in items if item.get("finish_reason") == "length"),
    )


def make_engine(student: StudentConfig, evaluation: EvaluationConfig) -> GenerationEngine:
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
    engine: GenerationEngine | None = None,
    base_responses: str | list[dict[str, Any]] | None = None,
) -> list[BenchmarkScore]:
    """Generate greedily on every benchmark and score; writes responses.jsonl and scores.json when output_dir is set.

    A finished evaluation (scores.json present) is read back instead of recomputed, so resumed sweeps never redo one.
    Pass an `engine` (from `make_engine`, or any `backends.GenerationEngine`) to evaluate many
    checkpoints on one loaded base model. `base_responses` (the base model's responses.jsonl path or rows) turns on
    the adapter-parity check: a checkpoint whose greedy responses equal the base model's on >= 98% of the shared
    items raises `AdapterParityError` naming it, and nothing is written.
    """
    if output_dir and os.path.exists(os.path.join(output_dir, SCORES)):
        return read_json(os.path.join(output_dir, SCORES))
    if engine is None:
        engine = make_engine(student, evaluation)

    scores: list[BenchmarkScore] = []
    records: list[EvalItem] = []
    for name, problems in benchmarks.items():
        generations = generate_with_info(engine, [p["prompt"] for p in problems],
                                         max_new_tokens=evaluation.max_new_tokens, adapter_path=adapter_path)
        responses = [g.text for g in generations]
        items = score_responses(problems, responses, allow_network_risk=allow_network_risk, benchmark=name)
        rows = [eval_item(name, problem["id"], generation, item)
                for problem, generation, item in zip(problems, generations, items, strict=True)]
        scores.append(summarise(name, rows, step=step, samples=samples))
        records.extend(rows)
    environment = engine.fingerprint()
    for score in scores:
        score["environment"] = environment
    if adapter_path and base_responses is not None:
        from distill_ray.evaluate.parity import check_not_base

        check_not_base(adapter_path, records, base_responses)
    if output_dir:
        write_text(os.path.join(output_dir, RESPONSES), "".join(json.dumps(r) + "\n" for r in records))
        write_text(os.path.join(output_dir, SCORES), json.dumps(scores, indent=1))
    return scores


def generate_with_info(engine: GenerationEngine, prompts: list[str], *, max_new_tokens: int,
                       adapter_path: str | None) -> list[Generation]:
    """Responses with their finish reason and token count (backends.GenerationEngine)."""
    return engine.generate_with_info(prompts, max_new_tokens=max_new_tokens, adapter_path=adapter_path)


def eval_item(benchmark: str, problem_id: str, generation: Generation, item: dict[str, Any]) -> EvalItem:
    return EvalItem(benchmark=benchmark, problem_id=problem_id, response=generation.text, verdict=item["verdict"],
                    reason=item["reason"], extracted=item["extracted"], base_status=item["base_status"],
                    plus_status=item["plus_status"], finish_reason=generation.finish_reason,
                    generated_tokens=generation.generated_tokens)


