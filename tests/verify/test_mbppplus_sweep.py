"""MBPP+ in the sweep's path is real MBPP+: the sweep's evaluation and `distill-ray score mbppplus` give the same
verdicts on the real release file (canonical solutions, and wrong solutions that pass MBPP's base asserts but fail the
plus inputs).

Canonical parity runs on a seeded subset of CANONICAL_SUBSET tasks by default (each task costs 4 sandboxed runs per
path on a shared 2-core machine); DISTILL_RAY_MBPP_ALL=1 runs all 378. Per-input time limits are evalplus's
(4 x the ground truth's measured time, at least 1 s; a split's whole run at most 61 s), so on a loaded machine a slow
canonical solution can time out on one run and not the other (seen once in a full run at load 12-30: Mbpp/422 on one
path, another task on the other); the tests widen both limits (for both paths alike) so that they judge the
comparison rules, not the machine's load.
"""

from __future__ import annotations

import gzip
import json
import os
import random

import pytest

from distill_ray.config import BenchmarkConfig
from distill_ray.evaluate import load_benchmark, score_responses, summarise
from distill_ray.verify.score_cli import score_main

CANONICAL_SUBSET = 60
FILE = "MbppPlus-v0.2.0.jsonl.gz"


def _response(code: str) -> str:
    return "<think>Write it and check the examples.</think>\n\nHere it is:\n```python\n" + code.strip() + "\n```\n"


def _raw_rows(shared_benchmarks) -> dict[str, dict]:
    with gzip.open(shared_benchmarks / FILE, "rt") as handle:
        return {row["task_id"]: row for row in map(json.loads, handle)}


def _score_cli(tmp_path, raw: dict[str, dict], solutions: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """(base_status, plus_status) per (task_id, solution) from `distill-ray score mbppplus` on a file of those tasks."""
    dataset = tmp_path / "subset.jsonl.gz"
    with gzip.open(dataset, "wt") as handle:
        for tid in dict.fromkeys(t for t, _ in solutions):
            handle.write(json.dumps(raw[tid]) + "\n")
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps({"task_id": t, "solution": s}) + "\n" for t, s in solutions))
    out = tmp_path / "out.json"
    assert score_main(["mbppplus", "--samples", str(samples), "--dataset", str(dataset), "--output", str(out),
                       "--workers", "2"]) == 0
    report = json.loads(out.read_text())["eval"]
    seen: dict[str, int] = {}
    statuses = []
    for tid, _ in solutions:
        row = report[tid][seen.get(tid, 0)]
        seen[tid] = seen.get(tid, 0) + 1
        statuses.append((row["base_status"], row["plus_status"]))
    return statuses


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    from distill_ray.verify import mbppplus

    monkeypatch.setenv("DISTILL_RAY_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(mbppplus, "GT_TIME_LIMIT_FACTOR", 40.0)
    monkeypatch.setattr(mbppplus, "MAX_RUN_WALL_S", 600.0)


def test_sweep_benchmark_carries_plus_inputs(shared_benchmarks):
    problems = load_benchmark(BenchmarkConfig(name="mbppplus", path=str(shared_benchmarks / FILE)))
    raw = _raw_rows(shared_benchmarks)
    assert len(problems) == 378
    for problem in problems:
        spec = json.loads(problem["tests"])
        row = raw[problem["id"]]
        assert spec["format"] == "evalplus"
        assert spec["plus_input"] == (row["plus_input"] or [])  # Mbpp/793 ships {} for an empty list
        assert spec["base_input"] == row["base_input"] and spec["canonical_solution"] == row["canonical_solution"]
    assert sum(len(json.loads(p["tests"])["plus_input"]) for p in problems) > 30 * 378


def test_canonical_solutions_pass_on_both_paths(shared_benchmarks, tmp_path, private_cache):
    problems = load_benchmark(BenchmarkConfig(name="mbppplus", path=str(shared_benchmarks / FILE)))
    if not os.environ.get("DISTILL_RAY_MBPP_ALL"):
        problems = random.Random(12).sample(problems, CANONICAL_SUBSET)
    raw = _raw_rows(shared_benchmarks)
    solutions = [(p["id"], raw[p["id"]]["canonical_solution"]) for p in problems]
    items = score_responses(problems, [_response(code) for _, code in solutions], benchmark="mbppplus")
    sweep = [(i["base_status"], i["plus_status"]) for i in items]
    assert sweep == _score_cli(tmp_path, raw, solutions)
    assert all(i["verdict"] == "pass" for i in items), [p["id"] for p, i in zip(problems, items)
                                                        if i["verdict"] != "pass"]
    score = summarise("mbppplus", items, step=0, samples=0)
    assert score["correct"] == score["base_correct"] == len(problems)


def _hard_coded(raw_row: dict, base_outputs: list) -> str:
    """A solution that answers exactly the visible (base) inputs from a table and nothing else."""
    from distill_ray.verify.mbppplus import deserialize_inputs

    inputs = deserialize_inputs(raw_row["task_id"], raw_row["base_input"])
    table = {repr(tuple(args)): out for args, out in zip(inputs, base_outputs, strict=True)}
    return "_ANSWERS = %r\n\ndef %s(*args):\n    return _ANSWERS.get(repr(args))\n" % (table, raw_row["entry_point"])


# (label, task, kind, a solution that passes MBPP's base asserts but not the plus inputs)
WRONG = [
    ("float rounding: perimeter rounded to an integer", "Mbpp/17", "float_rounding",
     "def square_perimeter(a):\n    return round(4 * a)\n"),
    ("float rounding: volume to two decimals", "Mbpp/234", "float_rounding",
     "def volume_cube(l):\n    return round(l ** 3, 2)\n"),
    ("off by one at the edge: n = 1 excluded", "Mbpp/86", "off_by_one_edge",
     "def centered_hexagonal_number(n):\n    return 3 * n * (n - 1) + 1 if n > 1 else 0\n"),
    ("off by one at the edge: empty and short inputs", "Mbpp/4", "off_by_one_edge",
     "import heapq\ndef heap_queue_largest(nums, n):\n    return heapq.nlargest(n, nums) if n >= 2 else []\n"),
]
HARD_CODED = ["Mbpp/59", "Mbpp/135", "Mbpp/430", "Mbpp/4"]


def test_base_passing_plus_failing_solutions_fail_mbppplus_on_both_paths(shared_benchmarks, tmp_path, private_cache):
    from distill_ray.verify.mbppplus import ground_truth, task_from_spec
    from distill_ray.verify.sandbox import shared_pool

    raw = _raw_rows(shared_benchmarks)
    by_id = {p["id"]: p for p in load_benchmark(BenchmarkConfig(name="mbppplus", path=str(shared_benchmarks / FILE)))}
    tasks = {tid: task_from_spec(json.loads(by_id[tid]["tests"])) for tid in HARD_CODED}
    truth = ground_truth(tasks, shared_pool(), None, use_cache=False)
    table = list(WRONG) + [("hard-coded answers for the visible asserts", tid, "hard_coded",
                            _hard_coded(raw[tid], truth[tid]["base"])) for tid in HARD_CODED]
    problems = [by_id[tid] for _, tid, _, _ in table]
    items = score_responses(problems, [_response(code) for *_, code in table], benchmark="mbppplus")
    cli = _score_cli(tmp_path, raw, [(tid, code) for _, tid, _, code in table])
    for (label, tid, _kind, _), item, statuses in zip(table, items, cli, strict=True):
        assert (item["base_status"], item["plus_status"]) == ("pass", "fail"), (label, tid, item)
        assert statuses == ("pass", "fail"), (label, tid, statuses)
        assert item["verdict"] == "fail" and item["reason"] in ("plus_wrong_answer", "plus_timeout"), label
    score = summarise("mbppplus", items, step=0, samples=0)
    assert (score["correct"], score["base_correct"]) == (0, len(table))


def test_missing_python_block_is_a_format_failure_on_both_paths(shared_benchmarks, tmp_path, private_cache):
    problems = load_benchmark(BenchmarkConfig(name="mbppplus", path=str(shared_benchmarks / FILE), subset=1))
    (item,) = score_responses(problems, ["<think>I would loop over the list.</think>\n\nJust loop."],
                              benchmark="mbppplus")
    assert (item["verdict"], item["reason"], item["base_status"], item["plus_status"]) == (
        "fail", "no_code", "fail", "fail")
    assert summarise("mbppplus", [item], step=0, samples=0)["format_failures"] == 1
    raw = _raw_rows(shared_benchmarks)
    assert _score_cli(tmp_path, raw, [(problems[0]["id"], "Just loop.")]) == [("fail", "fail")]
    assert json.loads((tmp_path / "out.json").read_text())["summary"]["format_failures"] == 1
