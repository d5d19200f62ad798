"""The report reads an experiment directory's files; here a hand-made one with known numbers."""

import json
import os

from distill_ray.report import load_experiment, write_report


def _write(path, data, jsonl=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        if jsonl:
            handle.writelines(json.dumps(r) + "\n" for r in data)
        else:
            json.dump(data, handle)


def _row(trial, teacher, domain, step, math_correct, code_correct, n=100):
    return {"trial": trial, "teacher": teacher, "student": "tiny", "domain": domain, "step": step,
            "samples": step * 50, "train_loss": 1.0 / step,
            "mini-math/accuracy": math_correct / n, "mini-math/ci95_low": 0.0, "mini-math/ci95_high": 1.0,
            "mini-math/n": n, "mini-math/format_failure_rate": 0.0,
            "mini-code/accuracy": code_correct / n, "mini-code/ci95_low": 0.0, "mini-code/ci95_high": 1.0,
            "mini-code/n": n, "mini-code/format_failure_rate": 0.5}


def _experiment(tmp_path):
    exp = tmp_path / "exp"
    _write(exp / "trials/a/results.jsonl", [_row("a", "good", "math", 100, 60, 10),
                                            _row("a", "good", "math", 200, 88, 12)], jsonl=True)
    _write(exp / "trials/b/results.jsonl", [_row("b", "bad", "math", 100, 70, 5),
                                            _row("b", "bad", "math", 200, 72, 5)], jsonl=True)
    base = [{"benchmark": "mini-math", "step": 0, "samples": 0, "n": 100, "correct": 80, "accuracy": 0.8,
             "ci95_low": 0.71, "ci95_high": 0.87, "format_failures": 3, "errors": 0},
            {"benchmark": "mini-code", "step": 0, "samples": 0, "n": 100, "correct": 20, "accuracy": 0.2,
             "ci95_low": 0.13, "ci95_high": 0.29, "format_failures": 0, "errors": 0}]
    _write(exp / "base/tiny/scores.json", base)
    return exp


def test_report_tables_carry_the_trial_numbers(tmp_path):
    exp = _experiment(tmp_path)
    path = write_report(str(exp))
    text = open(path).read()
    # per-step table: both checkpoints and the base row
    assert "| 200 | 10,000 | 88.0%" in text
    assert "| Base | — | 80.0%" in text
    # best in-domain is step 200 (88%), its delta against base 80% on 100 items is within noise
    assert "88.0% [0–100] (s200, mini-math)" in text
    assert "+8.0pp" in text and "~" in text
    # teacher vs teacher: 88 vs 72 on 100 items each is a real gap (no noise mark on that line)
    line = next(line for line in text.splitlines() if line.startswith("| math (mini-math)"))
    assert "-16.0pp" in line and not line.rstrip(" |").endswith("~")  # columns: bad, good (sorted)
    assert os.path.exists(exp / "curves-tiny.png")
    assert os.path.getsize(exp / "curves-tiny.png") > 1000


def test_report_numbers_round_trip_through_csv_and_json(tmp_path):
    exp = _experiment(tmp_path)
    write_report(str(exp))
    data = json.load(open(exp / "results.json"))
    assert sorted((r["trial"], r["step"]) for r in data["trials"]) == [("a", 100), ("a", 200), ("b", 100), ("b", 200)]
    assert data["base"]["tiny"]["mini-math"]["accuracy"] == 0.8
    lines = open(exp / "results.csv").read().splitlines()
    assert len(lines) == 5


def test_report_works_on_an_experiment_with_only_base_scores(tmp_path):
    exp = _experiment(tmp_path)
    for trial in ("a", "b"):
        os.remove(exp / f"trials/{trial}/results.jsonl")
    data = load_experiment(str(exp))
    assert data["rows"] == [] and data["benchmarks"] == ["mini-math", "mini-code"]
    assert "80.0%" in open(write_report(str(exp))).read()
