"""The verify stage: verify_rows (verdicts, retries of errors), statistics, the MATH-500 command, Ray Data."""

from __future__ import annotations

import json
import math
import os

import pytest

from distill_ray.verify import Verdict, trace_statistics, verify_rows, wilson_interval
from distill_ray.verify import batch as batch_module
from distill_ray.verify.score_cli import score_main

CODE_SPEC = json.dumps({"format": "call", "entry_point": "f", "inputs": [[3], [5]], "outputs": [6, 10], "atol": 0})


def _row(domain, text, teacher="t1", tokens=10, truncated=False, answer="42", tests=""):
    return {"domain": domain, "text": text, "answer": answer, "tests": tests, "teacher": teacher,
            "completion_tokens": tokens, "truncated": truncated}


def test_verify_rows_mixed(grader, pool):
    rows = [
        _row("math", "<think>a</think>\n\nThe answer is \\boxed{42}."),
        _row("math", "<think>a</think>\n\nThe answer is 42."),
        _row("code", "<think>b</think>\n\n```python\ndef f(x):\n    return x * 2\n```", tests=CODE_SPEC),
        _row("code", "<think>b</think>\n\n```python\ndef f(x):\n    return x + 2\n```", tests=CODE_SPEC),
    ]
    out = verify_rows(rows, grader=grader, pool=pool)
    assert [(r["verdict"], r["reason"]) for r in out] == [
        ("pass", "correct"), ("fail", "no_box"), ("pass", "correct"), ("fail", "wrong_answer")]
    assert out[2]["extracted"].startswith("def f")
    assert "verdict" not in rows[0]  # input rows are not modified


def test_errors_are_retried_and_never_become_fail(monkeypatch):
    calls = {"n": 0}

    def flaky(row, grader, pool, limits, strict_boxes=False):
        calls["n"] += 1
        if row["text"] == "always":
            return Verdict("error", "sandbox_error")
        return Verdict("error", "sandbox_error") if calls["n"] < 3 else Verdict("pass", "correct")

    monkeypatch.setattr(batch_module, "_judge_row", flaky)
    out = verify_rows([_row("code", "flaky")], max_retries=2, concurrency=1)
    assert (out[0]["verdict"], calls["n"]) == ("pass", 3)
    calls["n"] = 0
    out = verify_rows([_row("code", "always")], max_retries=2, concurrency=1)
    assert (out[0]["verdict"], calls["n"]) == ("error", 3)


def test_trace_statistics_numbers():
    rows = [dict(_row("math", "", tokens=t, truncated=(t > 35)), verdict=v, reason=r)
            for t, v, r in [(10, "pass", "correct"), (20, "pass", "correct"), (30, "fail", "no_box"),
                            (40, "fail", "wrong_answer"), (50, "error", "grader_crashed")]]
    rows.append(dict(_row("code", "", teacher="t2", tokens=7), verdict="pass", reason="correct"))
    stats = trace_statistics(rows)
    s = stats["t1/math"]
    assert (s["n"], s["passed"], s["errors"]) == (4, 2, 1)
    assert s["pass_rate"] == 0.5
    assert s["ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    assert s["ci95"][0] == pytest.approx(0.15003898915214947)
    assert (s["tokens_mean"], s["tokens_p50"], s["tokens_p90"]) == (30.0, 30.0, 46.0)
    assert s["truncation_rate"] == pytest.approx(0.4)
    assert s["failure_reasons"] == {"grader_crashed": 1, "no_box": 1, "wrong_answer": 1}
    assert stats["t2/code"]["pass_rate"] == 1.0
    assert math.isclose(wilson_interval(0, 10)[1], 0.27753279986288984)


def test_math500_command(tmp_path):
    dataset = tmp_path / "d.jsonl"
    dataset.write_text("\n".join(json.dumps({"problem": "p", "solution": "s", "answer": a, "subject": "x",
                                             "level": 1, "unique_id": "u%d" % i})
                                 for i, a in enumerate(["42", "\\frac{1}{2}", "\\sqrt{2}"])) + "\n")
    samples = tmp_path / "s.jsonl"
    samples.write_text("\n".join(json.dumps({"unique_id": u, "response": r}) for u, r in [
        ("u0", "<think>x</think>\n\n\\boxed{42}"), ("u1", "\\boxed{0.5}"), ("u2", "about 1.414"),
        ("u2", "\\boxed{1.4142}")]) + "\n")
    out = tmp_path / "o.json"
    assert score_main(["math500", "--samples", str(samples), "--dataset", str(dataset), "--output", str(out),
                       "--workers", "1"]) == 0
    report = json.loads(out.read_text())
    assert [i["correct"] for i in report["items"]] == [True, True, False, False]
    assert [i["reason"] for i in report["items"]][2:] == ["no_box", "approximate_answer"]
    assert (report["summary"]["n"], report["summary"]["correct"], report["summary"]["format_failures"]) == (4, 2, 1)
    assert report["summary"]["ci95"] == pytest.approx(list(wilson_interval(2, 4)))
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"unique_id": "u0", "response": "x"}) + "\n" + json.dumps({"unique_id": "u1"}) + "\n")
    assert score_main(["math500", "--samples", str(bad), "--dataset", str(dataset), "--output", str(out)]) == 2
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text(json.dumps({"unique_id": "nope", "response": "x"}) + "\n")
    assert score_main(["math500", "--samples", str(unknown), "--dataset", str(dataset), "--output", str(out)]) == 2


REAL_MATH = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "benchmarks", "math500.jsonl")


@pytest.mark.skipif(not os.path.exists(REAL_MATH), reason="MATH-500 file not present")
def test_math500_gold_answers_grade_themselves(grader):
    rows = [json.loads(line) for line in open(REAL_MATH)]
    verdicts = grader.grade_many([("\\boxed{%s}" % r["answer"], r["answer"]) for r in rows])
    passed = sum(v.verdict == "pass" for v in verdicts)
    assert passed >= 495, [(r["answer"], v) for r, v in zip(rows, verdicts) if v.verdict != "pass"][:10]


def test_verify_dataset_on_ray():
    ray = pytest.importorskip("ray")
    from distill_ray.verify import verify_dataset

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        rows = [_row("math", "\\boxed{42}"), _row("math", "\\boxed{41}"),
                _row("code", "```python\ndef f(x):\n    return 2 * x\n```", tests=CODE_SPEC)]
        ds = ray.data.from_items(rows)
        out = sorted(verify_dataset(ds, concurrency=1, workers_per_actor=1).take_all(), key=lambda r: r["text"])
        assert [(r["domain"], r["verdict"]) for r in out] == [("math", "fail"), ("math", "pass"), ("code", "pass")]
    finally:
        ray.shutdown()
