"""Math grader: a table of (response, gold, expected verdict, expected reason) cases, plus time limits."""

from __future__ import annotations

import threading
import time

import pytest

from distill_ray.verify.math_grader import canonical_text, exact_verdict, extract_final_answer, grade_math

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
    # the last box counts (earlier boxes are intermediate results or corrected slips)
    (T + "\\boxed{41} or maybe \\boxed{42}", "42", "pass", "correct"),
    (T + "\\boxed{10}. Wait, I made a slip; the answer is \\boxed{9}.", "9", "pass", "correct"),
    (T + "\\boxed{9}. Wait, no: \\boxed{10}.", "9", "fail", "wrong_answer"),
    (T + "\\boxed{27.}", "27", "pass", "correct"),
    (T + "\\boxed{27,}", "27", "pass", "correct"),
    (T + "\\boxed{\\textbf{Evelyn}}", "\\text{Evelyn}", "pass", "correct"),
    (T + "\\boxed{Evelyn}", "\\text{Evelyn}", "pass", "correct"),
    (T + "\\boxed{\\mathrm{(C)}}", "\\text{(C)}", "pass", "correct"),
    (T + "\\boxed{C}", "\\text{(C)}", "pass", "correct"),
    (T + "\\boxed{Eve}", "\\text{Evelyn}", "fail", "wrong_answer"),
    (T + "\\boxed{3, 4}", "3", "fail", "multiple_candidates"),
    (T + "\\boxed{3 or 4}", "3", "fail", "multiple_candidates"),
    (T + "\\boxed{\\textbf{}}", "3", "fail", "empty_box"),
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


def test_strict_boxes_option_fails_several_different_boxes(grader):
    """The training-data option (domains.<d>.verifier_options.strict_boxes): off by default, on it fails a response
    that boxes different answers; repeating one answer is still fine."""
    corrected = T + "\\boxed{10}. Wait, I made a slip; the answer is \\boxed{9}."
    assert grader.grade(corrected, "9").verdict == "pass"
    assert (grader.grade(corrected, "9", strict_boxes=True).reason) == "multiple_boxes"
    assert grade_math(corrected, "9", grader=grader, strict_boxes=True).reason == "multiple_boxes"
    assert grader.grade(T + "\\boxed{9} and so \\boxed{ 9 }", "9", strict_boxes=True).verdict == "pass"


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


# The exact path (decided in the caller, no worker): (gold, answer, equal, reason).
FAST_PATH = [
    ("42", "42", True, "correct"),
    ("\\frac{1}{2}", "0.5", True, "correct"),
    ("\\frac12", "\\dfrac{1}{2}", True, "correct"),
    ("\\frac{3}{4}", "3/4", True, "correct"),
    ("\\frac{3}{4}", "\\tfrac34", True, "correct"),
    ("-\\frac{7}{3}", "\\frac{-7}{3}", True, "correct"),
    ("1000", "1,000", True, "correct"),
    ("1000", "1{,}000", True, "correct"),
    ("5", "x = 5", True, "correct"),
    ("30", "30^\\circ", True, "correct"),
    ("25", "25\\%", True, "correct"),
    ("10", "10\\text{ cm}", True, "correct"),
    ("5", "5.0", True, "correct"),
    ("0.0000001", "1/10000000", True, "correct"),
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left(3,\\frac{\\pi}{2}\\right)", True, "correct"),  # same text
    ("x \\in [-2,7]", "x\\in[-2, 7]", True, "correct"),
    ("\\pi r^2", "\\pi r^2", True, "correct"),
    ("0.0000002", "0.0000001", False, "wrong_answer"),  # near-equal tiny values
    ("0.000000002", "0.000000001", False, "wrong_answer"),
    ("1", "1.00000001", False, "wrong_answer"),
    ("\\frac{1}{3}", "0.33333333", False, "wrong_answer"),  # 8-digit approximation of a rational
    ("\\frac{2}{3}", "0.66666667", False, "wrong_answer"),
    ("\\frac{1}{7}", "0.142857", False, "wrong_answer"),
    ("42", "43", False, "wrong_answer"),
    ("\\frac{2}{3}", "\\frac{3}{2}", False, "wrong_answer"),
    ("-3", "3", False, "wrong_answer"),
    ("1000", "1,001", False, "wrong_answer"),
    ("123456789", "123456788", False, "wrong_answer"),
]


@pytest.mark.parametrize("gold,answer,equal,reason", FAST_PATH)
def test_fast_path_table(grader, gold, answer, equal, reason):
    assert exact_verdict(gold, answer) == (equal, reason)
    result = grader.compare(gold, answer)
    assert (result.verdict, result.reason) == ("pass" if equal else "fail", reason)


# Not for the exact path: approximations of irrational golds, symbolic tiny values, letters that LaTeX keeps apart.
# (gold, answer, verdict, reason): the worker decides.
SLOW_PATH = [
    ("\\sqrt{2}", "1.41421356", "fail", "approximate_answer"),
    ("\\pi", "3.14159265", "fail", "approximate_answer"),
    ("\\frac{\\sqrt{3}}{2}", "0.86602540", "fail", "approximate_answer"),
    ("e", "2.71828183", "fail", "approximate_answer"),
    ("2 \\cdot 10^{-7}", "10^{-7}", "fail", "wrong_answer"),
    ("(\\sqrt{2}, 1)", "(1.41421356, 1)", "fail", "wrong_answer"),
    ("10^{-7}", "0.0000001", "pass", "correct"),
    ("\\frac{\\sqrt{3}}{2}", "\\dfrac{\\sqrt3}{2}", "pass", "correct"),
]


@pytest.mark.parametrize("gold,answer,verdict,reason", SLOW_PATH)
def test_slow_path_table(grader, gold, answer, verdict, reason):
    assert exact_verdict(gold, answer) is None
    result = grader.compare(gold, answer)
    assert (result.verdict, result.reason) == (verdict, reason)


def test_canonical_text_keeps_spaces_that_end_control_words():
    assert canonical_text("\\pi r") != canonical_text("\\pir")
    assert canonical_text(" $\\left( 1, 2 \\right)$ ") == "\\left(1,2\\right)"


def test_cached_gold_gives_the_same_verdicts(grader):
    gold = "\\frac{\\sqrt{3}}{2}"
    answers = [("\\frac{\\sqrt3}{2}", "pass"), ("\\frac{\\sqrt{2}}{2}", "fail"), ("0.8660254", "fail"),
               ("\\frac{3}{2\\sqrt{3}}", "pass")]
    for _ in range(3):  # every worker sees the gold several times: first parse, then the cached one
        assert [grader.compare(gold, a).verdict for a, _ in answers] == [v for _, v in answers]
