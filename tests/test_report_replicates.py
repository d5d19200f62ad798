"""Replicates and cost against gain in the report, on a hand-made experiment with known per-item verdicts.

Two teachers train the code domain under `training.seed` 0, 1, 2 (a replicated grid); one more trial (sonnet math)
has no seed axis. Correct sets are prefixes of the item lists, so every number below is known by hand.
"""

import json
import os

import pytest

from distill_ray.report import write_report
from distill_ray.report.costs import gain_costs, trace_costs
from distill_ray.report.data import load_experiment
from distill_ray.report.replicates import best_per_seed, replicate_groups, step_spread
from distill_ray.stats import paired_difference_interval, seed_item_bootstrap, wilson_interval

MATH_IDS = [f"m{i:02d}" for i in range(20)]
CODE_IDS = [f"c{i:02d}" for i in range(10)]

# (teacher, seed) -> {step: (math correct, code correct)}, counts of a prefix of the item list
CODE_TRIALS = {
    ("sonnet", 0): {100: (9, 6), 200: (10, 9)},
    ("sonnet", 1): {100: (8, 7), 200: (9, 8)},
    ("sonnet", 2): {100: (9, 8), 200: (11, 8)},
    ("r1", 0): {100: (7, 5), 200: (8, 6)},
    ("r1", 1): {100: (6, 4), 200: (8, 7)},
    ("r1", 2): {100: (7, 6), 200: (9, 5)},
}
MATH_TRIAL = {100: (14, 5), 200: (16, 4)}  # sonnet math, no seed axis
BASE = (10, 5)  # math 10/20, code 5/10
COST = {("sonnet", "code"): 1.5, ("r1", "code"): 0.3, ("sonnet", "math"): 2.0}


def _write(path, data, jsonl=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        if jsonl:
            handle.writelines(json.dumps(r) + "\n" for r in data)
        else:
            json.dump(data, handle)


def _checkpoint(folder, math_k, code_k, step):
    """responses.jsonl and scores.json of one model; returns the per-benchmark keys of its results row."""
    rows, scores, keys = [], [], {}
    for bench, ids, k in (("math500", MATH_IDS, math_k), ("mbppplus", CODE_IDS, code_k)):
        rows += [{"benchmark": bench, "problem_id": pid, "response": "...", "verdict": "pass" if i < k else "fail",
                  "reason": "", "extracted": ""} for i, pid in enumerate(ids)]
        low, high = wilson_interval(k, len(ids))
        scores.append({"benchmark": bench, "step": step, "samples": step * 50, "n": len(ids), "correct": k,
                       "accuracy": k / len(ids), "ci95_low": low, "ci95_high": high, "format_failures": 0,
                       "errors": 0})
        keys.update({f"{bench}/accuracy": k / len(ids), f"{bench}/ci95_low": low, f"{bench}/ci95_high": high,
                     f"{bench}/n": len(ids), f"{bench}/format_failure_rate": 0.0})
    _write(f"{folder}/responses.jsonl", rows, jsonl=True)
    _write(f"{folder}/scores.json", scores)
    return keys


def _trial(exp, teacher, domain, steps, seed=None):
    name = f"{teacher}__qwen__{domain}" + (f"_seed={seed}" if seed is not None else "")
    rows = []
    for step, (m, c) in steps.items():
        keys = _checkpoint(f"{exp}/trials/{name}/eval/step-{step:06d}", m, c, step)
        rows.append({"trial": name, "teacher": teacher, "student": "qwen", "domain": domain, "step": step,
                     "samples": step * 50, "train_loss": 1.0 / step, "examples": 200, "truncated_examples": 0,
                     **({"extra/training.seed": seed} if seed is not None else {}), **keys})
    _write(f"{exp}/trials/{name}/results.jsonl", rows, jsonl=True)


@pytest.fixture()
def experiment(tmp_path):
    exp = tmp_path / "exp"
    for (teacher, seed), steps in CODE_TRIALS.items():
        _trial(exp, teacher, "code", steps, seed)
    _trial(exp, "sonnet", "math", MATH_TRIAL)
    _checkpoint(f"{exp}/base/qwen", *BASE, 0)
    _write(f"{exp}/sweep.json", {"grid": {"teachers": ["sonnet", "r1"], "students": ["qwen"],
                                          "domains": ["math", "code"], "extra": {"training.seed": [0, 1, 2]}}})
    for (teacher, domain), usd in COST.items():
        _write(f"{exp}/traces/{teacher}/{domain}/done.json", {
            "teacher": teacher, "domain": domain,
            "generation": {"paid": 300, "ok": 296, "cost_usd": usd, "prompt_tokens": 30000,
                           "completion_tokens": 210000},
            "statistics": {"n": 290, "passed": 200 if teacher == "sonnet" else 100, "pass_rate": 0.5,
                           "ci95": [0.4, 0.6], "tokens_mean": 700, "tokens_p50": 650, "tokens_p90": 1200,
                           "truncation_rate": 0.0}})
    return str(exp)


def _table(text, heading):
    lines = text.splitlines()
    start = lines.index(heading)
    block = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            block.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif block:
            break
    return [block[0], *block[2:]]


def _code_verdicts(k):
    return {pid: i < k for i, pid in enumerate(CODE_IDS)}


def _math_verdicts(k):
    return {pid: i < k for i, pid in enumerate(MATH_IDS)}


def test_groups_are_the_trials_that_differ_only_in_seed(experiment):
    groups = replicate_groups(load_experiment(experiment))
    assert [(g["teacher"], g["domain"], sorted(g["seeds"])) for g in groups] == [
        ("sonnet", "code", [0, 1, 2]), ("r1", "code", [0, 1, 2])]


def test_mean_and_range_per_step_and_best_per_seed(experiment):
    sonnet = replicate_groups(load_experiment(experiment))[0]
    assert step_spread(sonnet, "mbppplus") == [
        {"step": 100, "mean": pytest.approx(0.7), "min": 0.6, "max": 0.8, "seeds": 3},
        {"step": 200, "mean": pytest.approx(25 / 30), "min": 0.8, "max": 0.9, "seeds": 3}]
    # seed 2 ties at 80% on steps 100 and 200: the earliest is its best
    assert [(p["seed"], p["step"], p["accuracy"]) for p in best_per_seed(sonnet, "mbppplus")] == [
        (0, 200, 0.9), (1, 200, 0.8), (2, 100, 0.8)]


def test_report_replicate_tables_every_cell(experiment):
    text = open(write_report(experiment)).read()
    assert _table(text, "#### sonnet code: seeds 0, 1, 2") == [
        ["Step", "MATH-500 mean [range]", "MBPP+ mean [range]", "seeds"],
        ["100", "43.3% [40.0–45.0]", "70.0% [60.0–80.0]", "3"],
        ["200", "50.0% [45.0–55.0]", "83.3% [80.0–90.0]", "3"],
    ]
    lines = text.splitlines()
    r1 = _table(text, "#### r1 code: seeds 0, 1, 2")
    assert r1 == [["Step", "MATH-500 mean [range]", "MBPP+ mean [range]", "seeds"],
                  ["100", "33.3% [30.0–35.0]", "50.0% [40.0–60.0]", "3"],
                  ["200", "41.7% [40.0–45.0]", "60.0% [50.0–70.0]", "3"]]
    # the best-per-seed table follows each group's step table
    start = lines.index("#### sonnet code: seeds 0, 1, 2")
    after = [line for line in lines[start:] if line.startswith("| Best")]
    assert after[:2] == ["| Best MATH-500 | 50.0% (s200) | 45.0% (s200) | 55.0% (s200) | 50.0% [45.0–55.0] |",
                         "| Best MBPP+ | 90.0% (s200) | 80.0% (s200) | 80.0% (s100) | 83.3% [80.0–90.0] |"]
    assert os.path.exists(os.path.join(experiment, "replicates-qwen.png"))


def test_teacher_difference_over_seeds_and_items(experiment):
    text = open(write_report(experiment)).read()
    table = _table(text, "#### Teacher vs teacher over seeds and items")
    assert table[0] == ["Comparison", "At", "Benchmark", "A − B [95% seed x item bootstrap]", "seeds A / B", "items"]
    rows = {(r[1], r[2]): r for r in table[1:]}
    # every row: sonnet's and r1's correct counts per seed (0, 1, 2) at the compared checkpoints
    expected = {("best MBPP+ per seed", "MBPP+"): ((9, 8, 8), (6, 7, 6)),
                ("best MBPP+ per seed", "MATH-500"): ((10, 9, 9), (8, 8, 7)),
                ("step 100", "MBPP+"): ((6, 7, 8), (5, 4, 6)), ("step 100", "MATH-500"): ((9, 8, 9), (7, 6, 7)),
                ("step 200", "MBPP+"): ((9, 8, 8), (6, 7, 5)), ("step 200", "MATH-500"): ((10, 9, 11), (8, 8, 9))}
    assert set(rows) == set(expected)
    for (at, bench), (ks_a, ks_b) in expected.items():
        make = _code_verdicts if bench == "MBPP+" else _math_verdicts
        d, low, high, n = seed_item_bootstrap([make(k) for k in ks_a], [make(k) for k in ks_b], resamples=4000)
        assert d == pytest.approx((sum(ks_a) - sum(ks_b)) / 3 / (10 if bench == "MBPP+" else 20))
        assert rows[(at, bench)] == [
            "sonnet code − r1 code", at, bench,
            f"{100 * d:+.1f}pp [{100 * low:+.1f}, {100 * high:+.1f}]" + (" ~" if low <= 0 <= high else ""), "3 / 3",
            str(n)]
    # at each seed's best MBPP+ checkpoint: sonnet s200 9, s200 8, s100 8; r1 s200 6, s200 7, s100 6 (of 10)
    d, low, high, n = seed_item_bootstrap([_code_verdicts(k) for k in (9, 8, 8)],
                                          [_code_verdicts(k) for k in (6, 7, 6)], resamples=4000)
    assert d == pytest.approx(0.2) and n == 10
    assert rows[("best MBPP+ per seed", "MBPP+")] == [
        "sonnet code − r1 code", "best MBPP+ per seed", "MBPP+",
        f"{100 * d:+.1f}pp [{100 * low:+.1f}, {100 * high:+.1f}]" + (" ~" if low <= 0 <= high else ""), "3 / 3", "10"]
    # MATH-500 at those same checkpoints: sonnet 10, 9, 9; r1 8, 8, 7 (of 20)
    d, low, high, n = seed_item_bootstrap([_math_verdicts(k) for k in (10, 9, 9)],
                                          [_math_verdicts(k) for k in (8, 8, 7)], resamples=4000)
    assert d == pytest.approx(5 / 60) and n == 20
    assert rows[("best MBPP+ per seed", "MATH-500")][3].startswith("+8.3pp")
    results = json.load(open(os.path.join(experiment, "results.json")))
    diff = next(x for x in results["replicates"]["differences"]
                if x["at"] == "best MBPP+ per seed" and x["benchmark"] == "math500")
    assert (diff["delta"], diff["ci95_low"], diff["ci95_high"]) == pytest.approx((d, low, high))


def test_trace_costs_per_teacher(experiment):
    costs = {(c["teacher"], c["domain"]): c for c in trace_costs(load_experiment(experiment))}
    sonnet = costs[("sonnet", "code")]
    assert sonnet["usd_per_generated"] == pytest.approx(1.5 / 296)
    assert sonnet["usd_per_verified"] == pytest.approx(1.5 / 200)
    assert sonnet["tokens_per_verified"] == pytest.approx(240000 / 200)
    assert costs[("r1", "code")]["usd_per_verified"] == pytest.approx(0.3 / 100)


def test_gain_per_dollar_with_replicates_and_without(experiment):
    gains = {(g["teacher"], g["domain"]): g for g in gain_costs(load_experiment(experiment))}
    # replicated: mean of each seed's best MBPP+ (90, 80, 80) minus base 50 = +33.3 points, over $1.50
    sonnet = gains[("sonnet", "code")]
    d, low, high, _ = seed_item_bootstrap([_code_verdicts(k) for k in (9, 8, 8)], [_code_verdicts(5)],
                                          resamples=4000)
    assert sonnet["method"] == "seed x item bootstrap" and sonnet["seeds"] == 3 and sonnet["steps"] == [200, 200, 100]
    assert sonnet["gain_points"] == pytest.approx(100 / 3)
    assert sonnet["gain_ci95"] == pytest.approx([100 * low, 100 * high])
    assert sonnet["points_per_1000_usd"] == pytest.approx(100 / 3 / 1.5 * 1000)
    assert sonnet["points_per_1000_usd_ci95"] == pytest.approx([100 * low / 1.5 * 1000, 100 * high / 1.5 * 1000])
    assert sonnet["usd_per_point"] == pytest.approx(1.5 / (100 / 3))
    # r1: (60 + 70 + 60) / 3 - 50 = +13.3 points over $0.30
    assert gains[("r1", "code")]["points_per_1000_usd"] == pytest.approx((190 / 3 - 50) / 0.3 * 1000)
    # one trial: best MATH-500 16/20 at s200 minus base 10/20, Newcombe's paired interval on nested prefixes
    single = gains[("sonnet", "math")]
    d, low, high = paired_difference_interval(10, 6, 0, 4)
    assert single["method"] == "paired (Newcombe method 10)" and single["steps"] == [200]
    assert single["gain_points"] == pytest.approx(30.0)
    assert single["gain_ci95"] == pytest.approx([100 * low, 100 * high])
    assert single["points_per_1000_usd"] == pytest.approx(15000.0)
    text = open(write_report(experiment)).read()
    table = _table(text, "## Cost against gain")
    assert table[1] == ["r1", "code", "$0.3000", "240,000", "296", "100", "$0.001014", "$0.003000", "811", "2,400"]


def test_no_replicates_no_section(tmp_path):
    exp = tmp_path / "exp"
    _trial(exp, "sonnet", "math", MATH_TRIAL)
    _checkpoint(f"{exp}/base/qwen", *BASE, 0)
    text = open(write_report(str(exp))).read()
    assert "Replicates" not in text
    assert "## Cost against gain" not in text  # no traces: no dollars to set against the gain
    assert not os.path.exists(exp / "replicates-qwen.png")
