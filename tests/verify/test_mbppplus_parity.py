"""MBPP+ scorer: verdict parity with evalplus's own evaluator on project-written tasks, exploits, CLI contract."""

from __future__ import annotations

import gzip
import json
import os

import pytest

from distill_ray.verify.mbppplus import ground_truth, read_mbppplus_tasks, sanitize, score_mbppplus
from distill_ray.verify.score_cli import score_main

TASKS = [
    {"task_id": "Mbpp/9001", "entry_point": "double_all", "atol": 0,
     "prompt": '"""\nDouble every element.\nassert double_all([1, 2]) == [2, 4]\n"""\n',
     "canonical_solution": "def double_all(xs):\n    return [2 * x for x in xs]\n",
     "base_input": [[[1, 2]], [[]]], "plus_input": [[[5, -1, 0]], [list(range(50))]]},
    {"task_id": "Mbpp/9002", "entry_point": "mean", "atol": 0,
     "prompt": '"""\nArithmetic mean.\n"""\n',
     "canonical_solution": "def mean(xs):\n    return sum(xs) / len(xs)\n",
     "base_input": [[[1, 2, 4]], [[0.1, 0.2]]], "plus_input": [[[1e-9, 3.0]], [[7]]]},
    {"task_id": "Mbpp/9003", "entry_point": "similar_elements", "atol": 0,
     "prompt": '"""\nShared elements (set-equality oracle).\n"""\n',
     "canonical_solution": "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n",
     "base_input": [[[3, 4, 5], [5, 7, 4]]], "plus_input": [[[1, 2, 3, 4], [4, 3, 9]]]},
    {"task_id": "Mbpp/9004", "entry_point": "pair_up", "atol": 0,
     "prompt": '"""\nPairs of neighbours as tuples.\n"""\n',
     "canonical_solution": "def pair_up(xs):\n    return [(a, b) for a, b in zip(xs, xs[1:])]\n",
     "base_input": [[[1, 2, 3]]], "plus_input": [[["a", "b"]], [[]]]},
]

SOLUTIONS = {
    "Mbpp/9001": [
        ("honest", "def double_all(xs):\n    out = []\n    for x in xs:\n        out.append(x + x)\n    return out\n"),
        ("wrong_plus", "def double_all(xs):\n    return [2 * x for x in xs] if len(xs) < 3 else []\n"),
        ("wrong", "def double_all(xs):\n    return xs\n"),
        ("crash", "def double_all(xs):\n    return xs[10]\n"),
    ],
    "Mbpp/9002": [
        ("honest_float", "def mean(xs):\n    return float(sum(xs)) / len(xs) + 1e-12\n"),
        ("wrong", "def mean(xs):\n    return sum(xs) // len(xs)\n"),
    ],
    "Mbpp/9003": [
        ("honest_order", "def similar_elements(a, b):\n    return tuple(sorted(set(a) & set(b), reverse=True))\n"),
        ("wrong", "def similar_elements(a, b):\n    return tuple(a)\n"),
    ],
    "Mbpp/9004": [
        ("honest", "def pair_up(xs):\n    return [tuple(xs[i:i + 2]) for i in range(len(xs) - 1)]\n"),
        ("lists_not_tuples", "def pair_up(xs):\n    return [[a, b] for a, b in zip(xs, xs[1:])]\n"),
        ("syntax", "def pair_up(xs)\n    return []\n"),
    ],
}

EXPLOITS = {
    "Mbpp/9001": "class Y(list):\n    def __eq__(s, o): return True\ndef double_all(xs):\n    return Y()\n",
    "Mbpp/9002": "import math\nmath.isclose = lambda *a, **k: True\ndef mean(xs):\n    return 0.0\n",
    "Mbpp/9004": "import os\ndef pair_up(xs):\n    os._exit(0)\n",
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("mbpp") / "MiniPlus.jsonl.gz"
    with gzip.open(path, "wt") as f:
        for task in TASKS:
            f.write(json.dumps(task) + "\n")
    return str(path)


def _samples():
    return [{"task_id": tid, "solution": code, "_kind": kind} for tid, sols in SOLUTIONS.items()
            for kind, code in sols]


def _evalplus_statuses(tasks, samples):
    evalplus_eval = pytest.importorskip("evalplus.eval")
    from evalplus.gen.util import trusted_exec

    out = []
    for sample in samples:
        task = tasks[sample["task_id"]]
        code = task["prompt"] + task["canonical_solution"]
        statuses = []
        for split in ("base", "plus"):
            expected, times = trusted_exec(code, task[split + "_input"], task["entry_point"], record_time=True)
            status, _ = evalplus_eval.untrusted_check("mbpp", sample["solution"], task[split + "_input"],
                                                      task["entry_point"], expected, task["atol"], times,
                                                      fast_check=True)
            statuses.append(status)
        out.append(tuple(statuses))
    return out


def test_parity_with_evalplus_on_honest_and_wrong(dataset, pool, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_RAY_CACHE", str(tmp_path))
    tasks = read_mbppplus_tasks(dataset)
    samples = _samples()
    truth = ground_truth(tasks, pool, None, use_cache=False)
    ours = score_mbppplus(samples, tasks, pool, truth)["eval"]
    ours_flat = []
    for tid in SOLUTIONS:
        ours_flat.extend((r["base_status"], r["plus_status"]) for r in ours[tid])
    theirs = _evalplus_statuses(tasks, samples)
    assert ours_flat == theirs
    kinds = {s["_kind"] + s["task_id"]: st for s, st in zip(samples, ours_flat)}
    assert kinds["honestMbpp/9001"] == ("pass", "pass")
    assert kinds["wrong_plusMbpp/9001"] == ("pass", "fail")
    assert kinds["honest_orderMbpp/9003"] == ("pass", "pass")
    assert kinds["lists_not_tuplesMbpp/9004"] == ("fail", "fail")


def test_exploits_fail_here(dataset, pool):
    tasks = read_mbppplus_tasks(dataset)
    samples = [{"task_id": tid, "solution": code} for tid, code in EXPLOITS.items()]
    truth = ground_truth({t: tasks[t] for t in EXPLOITS}, pool, None, use_cache=False)
    result = score_mbppplus(samples, tasks, pool, truth)["eval"]
    for tid in EXPLOITS:
        assert result[tid][0]["base_status"] == "fail", tid


def test_poisoned_cache_cannot_be_written_by_a_program(dataset, pool, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_RAY_CACHE", str(tmp_path))
    tasks = read_mbppplus_tasks(dataset)
    ground_truth(tasks, pool, "f" * 64)
    cache = [os.path.join(tmp_path, n) for n in os.listdir(tmp_path)]
    before = [open(p, "rb").read() for p in cache]
    attack = ("import glob\nfor p in glob.glob(%r + '/*'):\n    open(p, 'w').write('{}')\n"
              "def double_all(xs):\n    return []\n" % str(tmp_path))
    truth = ground_truth(tasks, pool, "f" * 64)
    score_mbppplus([{"task_id": "Mbpp/9001", "solution": attack}], tasks, pool, truth)
    assert [open(p, "rb").read() for p in cache] == before
    honest = score_mbppplus([{"task_id": "Mbpp/9001", "solution": TASKS[0]["canonical_solution"]}], tasks, pool,
                            ground_truth(tasks, pool, "f" * 64))
    assert honest["eval"]["Mbpp/9001"][0]["plus_status"] == "pass"


def test_sanitizer_extracts_entry_point_and_dependencies():
    text = ("Here you go:\n```python\nimport math\n\ndef helper(x):\n    return math.sqrt(x)\n\n"
            "def unused():\n    return 1\n\ndef f(x):\n    return helper(x) * 2\n\nprint(f(4))\nassert f(4) == 4\n```\n"
            "Hope it helps!")
    code = sanitize(text, "f")
    assert "import math" in code and "def helper" in code and "def f" in code
    assert "unused" not in code and "print" not in code and "assert" not in code


def test_cli_contract(dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("DISTILL_RAY_CACHE", str(tmp_path))
    samples = tmp_path / "s.jsonl"
    samples.write_text("\n".join(json.dumps({"task_id": s["task_id"], "solution": s["solution"]})
                                 for s in _samples()) + "\n")
    out = tmp_path / "o.json"
    assert score_main(["mbppplus", "--samples", str(samples), "--dataset", dataset, "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["eval"]) == set(SOLUTIONS)
    assert report["summary"]["n_samples"] == len(_samples())
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"task_id": "Mbpp/9001", "solution": "x"}) + "\n" + json.dumps({"solution": "y"}) + "\n")
    assert score_main(["mbppplus", "--samples", str(bad), "--dataset", dataset, "--output", str(out)]) == 2


REAL = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "benchmarks", "MbppPlus-v0.2.0.jsonl.gz")


@pytest.mark.skipif(not os.path.exists(REAL), reason="MBPP+ release file not present")
def test_real_dataset_loads_with_evalplus_input_types():
    from evalplus.data.mbpp import mbpp_deserialize_inputs

    tasks = read_mbppplus_tasks(REAL)
    assert len(tasks) == 378
    with gzip.open(REAL, "rt") as f:
        raw = {row["task_id"]: row for row in map(json.loads, f)}
    for tid, task in tasks.items():
        expected = mbpp_deserialize_inputs(tid, raw[tid]["base_input"])
        assert repr([list(x) for x in task["base_input"]]) == repr([list(x) for x in expected]), tid
