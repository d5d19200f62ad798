"""Math grader: a table of (response, gold, expected verdict, expected reason) cases, plus time limits."""

from __future__ import annotations

import threading
import time

import pytest

from distill_ray.verify.math_grader import extract_final_answer, grade_math

T = "<think>Let me work it out. Maybe \\boxed{7}? No.</think>\n\n"

CASES = [
    # equivalent forms
    (T + "The answer is \\boxed{42}.", "42", "pass", "correct"),
    (T + "\\boxed{\\dfrac{1}{2}}", "\\frac12", "pass", "correct"),
    (T + "\\boxed{0.5}", "\\frac{1}{2}", "pass", "correct"),
    (T + "\\boxed{\\left( 3, 4 \\right)}", "(3,4)", "pass", "correct"),
    (T + "\\boxed{10\\text{ cm}}", "10", "pass", "correct"),
    (T + "\\boxed{30^\\circ}", "30", "pass", "correct"),
    (T + "\\boxed{\\$5}", "5", "pass", "correct"),
    (T + "\\boxed{1,000}", "1000", "pass", "correct"),
    (T + "\\boxed{x = 5}", "5", "pass", "correct"),
    (T + "\\boxed{[2, 5)}", "[2,5)", "pass", "correct"),
    (T + "\\boxed{2\\sqrt{2}}", "\\sqrt{8}", "pass", "correct"),
    (T + "\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
     "pass", "correct"),
    (T + "\\boxed{\\pi/2}", "\\frac{\\pi}{2}", "pass", "correct"),
    (T + "\\boxed{-3}", "-3", "pass", "correct"),
    (T + "\\boxed{5.0}", "5", "pass", "correct"),
    (T + "\\boxed{25\\%}", "25", "pass", "correct"),
    (T + "\\boxed{\\text{Monday}}", "\\text{Monday}", "pass", "correct"),
    (T + "Done: \\boxed{3} and again \\boxed{3}.", "3", "pass", "correct"),
    ("No reasoning block, just \\boxed{12}.", "12", "pass", "correct"),
    # not equivalent
    (T + "\\boxed{43}", "42", "fail", "wrong_answer"),
    (T + "\\boxed{1.41421356}", "\\sqrt{2}", "fail", "approximate_answer"),
    (T + "\\boxed{3.14159265}", "\\pi", "fail", "approximate_answer"),
    (T + "\\boxed{0.3333333}", "\\frac{1}{3}", "fail", "wrong_answer"),
    (T + "\\boxed{0.0000001}", "0.0000002", "fail", "wrong_answer"),
    (T + "\\boxed{10^{-7}}", "2 \\cdot 10^{-7}", "fail", "wrong_answer"),
    (T + "\\boxed{(4,3)}", "(3,4)", "fail", "wrong_answer"),
    (T + "\\boxed{\\frac{2}{3}}", "\\frac{3}{2}", "fail", "wrong_answer"),
    # no box, several boxes, empty box, candidates, unfinished reasoning
    (T + "The answer is 42.", "42", "fail", "no_box"),
    ("<think>I think it is \\boxed{42} but I ran out of tokens", "42", "fail", "no_answer"),
    (T + "\\boxed{41} or maybe \\boxed{42}", "42", "fail", "multiple_boxes"),
    (T + "\\boxed{}", "42", "fail", "empty_box"),
    (T + "\\boxed{41 \\text{ or } 42}", "42", "fail", "multiple_candidates"),
    (T + "\\boxed{" + "9" * 2000 + "}", "42", "fail", "answer_too_long"),
]


@pytest.mark.parametrize("response,gold,verdict,reason", CASES)
def test_table(grader, response, gold, verdict, reason):
    result = grader.grade(response, gold)
    assert (result.verdict, result.reason) == (verdict, reason), result


def test_reasoning_boxes_are_ignored():
    assert extract_final_answer(T + "\\boxed{8}") == (None, "8")


@pytest.mark.parametrize("answer", ["9^{9^{9^9}}", "10^{10^{10^{10}}}", "(10^{100})!", "x^{x^{x^{x^{99999999}}}}"])
def test_pathological_answers_fail_fast(grader, answer):
    started = time.monotonic()
    result = grader.grade(T + "\\boxed{" + answer + "}", "3")
    elapsed = time.monotonic() - started
    assert result.verdict == "fail"
    assert elapsed < 2.0
    assert grader.grade(T + "\\boxed{3}", "3").verdict == "pass"  # the pool recovered


def test_time_limit_works_off_the_main_thread(grader):
    out = {}

    def work():
        out["v"] = grade_math(T + "\\boxed{9^{9^{9^9}}}", "3", grader=grader)
        out["ok"] = grade_math(T + "\\boxed{\\frac{6}{12}}", "\\frac12", grader=grader)

    thread = threading.Thread(target=work)
    started = time.monotonic()
    thread.start()
    thread.join(10)
    assert not thread.is_alive()
    assert time.monotonic() - started < 6
    assert out["v"].verdict == "fail" and out["ok"].verdict == "pass"


def test_missing_gold_is_an_error_not_a_fail(grader):
    assert grader.grade(T + "\\boxed{1}", "").verdict == "error"
