"""Evaluation: scoring separates wrong answers from format failures; the base model is scored end to end."""

import json
import os

import pytest

from distill_ray.config import BenchmarkConfig, EvaluationConfig, StudentConfig
from distill_ray.evaluate import evaluate_checkpoint, load_benchmark, score_responses, summarise


def test_mini_benchmarks_are_disjoint_from_training_problems():
    from distill_ray.builtin_problems import make_problems

    bench = load_benchmark(BenchmarkConfig(name="mini-math", subset=80))
    train = make_problems("math", "train", 2000, 0)
    assert len(bench) == 80
    assert not {p["prompt"] for p in bench} & {p["prompt"] for p in train}


def test_scores_separate_wrong_answers_from_format_failures():
    problems = load_benchmark(BenchmarkConfig(name="mini-math", subset=4))
    gold = [p["answer"] for p in problems]
    responses = [
        f"<think>easy</think>\n\nThe answer is \\boxed{{{gold[0]}}}.",      # right
        f"<think>hmm</think>\n\nThe answer is \\boxed{{{int(gold[1]) + 1}}}.",  # wrong, well formatted
        f"<think>so it is {gold[2]}</think>\n\nThe answer is {gold[2]}.",      # right number, but no box: format
        "",                                                                   # nothing at all: format
    ]
    items = score_responses(problems, responses)
    assert [i["verdict"] for i in items] == ["pass", "fail", "fail", "fail"]
    score = summarise("mini-math", items, step=100, samples=1600)
    assert (score["n"], score["correct"], score["format_failures"], score["errors"]) == (4, 1, 2, 0)
    assert score["accuracy"] == 0.25
    assert score["ci95_low"] < 0.25 < score["ci95_high"]


def test_code_scores_run_the_tests():
    problems = load_benchmark(BenchmarkConfig(name="mini-code", subset=2))
    spec = json.loads(problems[0]["tests"])
    name = spec["entry_point"]
    good = "```python\n" + f"def {name}(x):\n" + "    return " + repr(spec["outputs"][0]) + " if x == 0 else None\n```"
    items = score_responses(problems[:1] * 2, [good, "I would write a function."])
    assert [i["verdict"] for i in items] == ["fail", "fail"]
    assert items[1]["reason"] == "no_code"


@pytest.mark.parametrize("model", ["builtin:tiny-llama", "builtin:tiny-qwen3-moe"])
def test_random_base_model_is_scored_and_saved(tmp_path, model):
    benchmarks = {"mini-math": load_benchmark(BenchmarkConfig(name="mini-math", subset=6))}
    evaluation = EvaluationConfig(benchmarks=[BenchmarkConfig(name="mini-math", subset=6)], max_new_tokens=8,
                                  batch_size=4)
    scores = evaluate_checkpoint(StudentConfig(model=model), None, benchmarks, evaluation, step=0, samples=0,
                                 output_dir=str(tmp_path))
    (score,) = scores
    # a random network emits no boxed answer: every item is a format failure, none is correct
    assert (score["n"], score["correct"], score["format_failures"]) == (6, 0, 6)
    saved = [json.loads(line) for line in open(os.path.join(tmp_path, "responses.jsonl"))]
    assert len(saved) == 6 and all(r["reason"] == "no_box" for r in saved)
    # a finished evaluation is read back, not recomputed
    assert evaluate_checkpoint(StudentConfig(model=model), None, {}, evaluation, step=0, samples=0,
                               output_dir=str(tmp_path)) == scores
