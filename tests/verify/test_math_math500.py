"""The math judge on the real MATH-500 file: every reference solution grades correct, and a labelled set built from
its gold answers (math_labelled: rewrites that must pass, near-misses that must fail) stays within the targets
(false-accept <= 0.5%, false-reject <= 1.5%) on all 500 problems (about 8,000 cases, mostly decided on the exact
path); `benchmarks/score_math.py` prints the same rates with per-case times.
"""

from __future__ import annotations

import json

from distill_ray.verify.math_labelled import error_rates, labelled_cases


def _rows(shared_benchmarks) -> list[dict]:
    with open(shared_benchmarks / "math500.jsonl", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def test_every_reference_solution_grades_correct(shared_benchmarks, grader):
    rows = _rows(shared_benchmarks)
    assert len(rows) == 500
    verdicts = grader.grade_many([(row["solution"], row["answer"]) for row in rows])
    wrong = [(row["unique_id"], row["answer"], v.extracted, v.reason) for row, v in zip(rows, verdicts)
             if v.verdict != "pass"]
    assert wrong == []
    # the reference that boxes an intermediate result before its answer (rejected by a several-boxes rule)
    by_id = {row["unique_id"]: (row, v) for row, v in zip(rows, verdicts)}
    row, verdict = by_id["test/number_theory/459.json"]
    assert row["solution"].count("\\boxed") > 1 and verdict.passed


def test_labelled_set_from_math500_meets_the_targets(shared_benchmarks, grader):
    rows = _rows(shared_benchmarks)
    cases = labelled_cases([(row["unique_id"], row["answer"]) for row in rows])
    kinds = {c.kind for c in cases}
    assert {"self_correction", "trailing_period", "textbf_wrapper", "off_by_one", "wrong_sign", "hedge_or",
            "hedge_comma", "empty_box", "no_box", "cut_in_think", "last_box_wrong"} <= kinds
    verdicts = grader.grade_many([(c.response, c.gold) for c in cases])
    rates = error_rates(cases, verdicts)
    assert rates["must_pass"] > 3000 and rates["must_fail"] > 4000
    assert rates["false_accept_rate"] <= 0.005, rates["false_accept_examples"]
    assert rates["false_reject_rate"] <= 0.015, rates["false_reject_examples"]
    # fail closed for the right reason
    by_kind = {}
    for case, verdict in zip(cases, verdicts):
        by_kind.setdefault(case.kind, set()).add(verdict.reason)
    assert by_kind["empty_box"] == {"empty_box"}
    assert by_kind["no_box"] == by_kind["box_only_in_reasoning"] == {"no_box"}
    assert by_kind["cut_in_think"] == {"no_answer"}
    assert by_kind["hedge_or"] == by_kind["hedge_comma"] == {"multiple_candidates"}


def test_text_golds_accept_bare_words_and_wrappers(shared_benchmarks, grader):
    text_golds = [row["answer"] for row in _rows(shared_benchmarks) if row["answer"].startswith("\\text{")]
    assert "\\text{Evelyn}" in text_golds
    for gold in text_golds:
        inner = gold[len("\\text{"):-1]
        for answer in (inner, "\\textbf{%s}" % inner, "\\mathrm{%s}" % inner, gold + "."):
            verdict = grader.grade("<think>ok</think>\n\n\\boxed{%s}" % answer, gold)
            assert verdict.passed, (gold, answer, verdict)
