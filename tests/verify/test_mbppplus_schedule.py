"""MBPP+ judge scheduling: the longest runs (by ground-truth time) start first; verdicts come back in the pairs' order.

The real sandbox pool runs every program; the test only records the order in which jobs reach it.
"""

from __future__ import annotations

from distill_ray.verify.mbppplus import ground_truth, run_base_plus

SLOW = {"task_id": "Mbpp/9101", "entry_point": "slow_square", "atol": 0, "prompt": "",
        "canonical_solution": "import time\ndef slow_square(x):\n    time.sleep(0.2)\n    return x * x\n",
        "base_input": [[1]], "plus_input": [[2], [3], [4]]}
FAST = {"task_id": "Mbpp/9102", "entry_point": "inc", "atol": 0, "prompt": "",
        "canonical_solution": "def inc(x):\n    return x + 1\n",
        "base_input": [[1], [2]], "plus_input": [[5]]}


def test_longest_runs_start_first_and_results_keep_their_order(pool, monkeypatch):
    tasks = {t["task_id"]: t for t in (SLOW, FAST)}
    truth = ground_truth(tasks, pool, None, use_cache=False)
    started: list[tuple[str, int]] = []
    real_run = pool.run

    def spy(job, limits=None):
        started.append((job["entry_point"], len(job["inputs"])))
        return real_run(job, limits)

    monkeypatch.setattr(pool, "run", spy)
    pairs = [(FAST["canonical_solution"], FAST), ("def inc(x):\n    return x\n", FAST),
             (SLOW["canonical_solution"], SLOW)]
    results = run_base_plus(pairs, pool, truth)
    # the slow task's plus split (3 x 0.2 s of ground truth) first, then its base split (0.2 s), then the fast ones
    assert started[:2] == [("slow_square", 3), ("slow_square", 1)]
    assert sorted(started[2:]) == [("inc", 1), ("inc", 1), ("inc", 2), ("inc", 2)]
    assert [(r["base_status"], r["plus_status"]) for r in results] == [("pass", "pass"), ("fail", "fail"),
                                                                       ("pass", "pass")]
