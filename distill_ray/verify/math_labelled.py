"""A labelled math grading set built from MATH-500's gold answers: rewrites that must pass, near-misses that must fail.

    from distill_ray.verify.math_labelled import labelled_cases, error_rates
    cases = labelled_cases([(row["unique_id"], row["answer"]) for row in math500_rows])
    rates = error_rates(cases, [grader.grade(c.response, c.gold) for c in cases])   # {"false_accept_rate": ...}

Every gold answer yields the same families of cases (the `kind` of each case names it):
- must pass: the gold verbatim; a self-correction (an earlier wrong box, then the gold boxed last); a wrong box inside
  the reasoning; a trailing period inside the box; the box wrapped in `\\textbf{}`; no reasoning block at all; an
  equivalent form (`\\dfrac` for `\\frac`, an exact decimal, `x = ` before a number, other spacing after commas,
  the bare word for a `\\text{}` gold) where one exists;
- must fail: off by one (the number plus one, or `gold + 1`); the wrong sign (plain nonzero numbers and expressions
  without commas, signs or equations); a hedge (`gold or W`, and `gold, W` for a gold without a comma); an empty box;
  no box; the right box inside the reasoning only; a response cut inside `<think>`; the right box followed by a
  wrong one (the last box counts).
The wrong value W is the off-by-one answer. Nothing here is random: the same golds give the same cases.

Not guaranteed: that a "must fail" rewrite is wrong for every conceivable gold (a gold equal to its own negation is
skipped, but exotic symmetric answers could exist); the set measures the grader's rules, not a model's answers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from fractions import Fraction

from distill_ray.verify.math_grader import as_rational
from distill_ray.verify.verdict import Verdict

THINK = "<think>Let me work through it carefully and check each step.</think>\n\n"
_TEXT_GOLD_RE = re.compile(r"^\\text\{\s*\(?([A-Za-z][A-Za-z ]*)\)?\s*\}$")


@dataclass(frozen=True)
class Case:
    problem_id: str
    kind: str
    response: str
    gold: str
    should_pass: bool


def _latex(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return "%s\\frac{%d}{%d}" % (sign, abs(value.numerator), value.denominator)


def off_by_one(gold: str) -> str:
    value = as_rational(gold)
    if value is not None:
        return _latex(value + 1)
    text = _TEXT_GOLD_RE.match(gold)
    if text:
        return "\\text{%sx}" % text.group(1)
    return gold + "+1"


def wrong_sign(gold: str) -> str | None:
    value = as_rational(gold)
    if value is not None:
        return _latex(-value) if value != 0 else None
    if any(mark in gold for mark in (",", "\\pm", "\\mp", "=", "\\text", "\\infty", "|", "\\in", "<", ">")):
        return None
    return "-(%s)" % gold


def equivalent_forms(gold: str) -> list[str]:
    """Forms a model writes for the same answer, each different from the gold's text."""
    forms: list[str] = []
    value = as_rational(gold)
    if value is not None:
        if value.denominator != 1:
            forms.append("\\dfrac{%d}{%d}" % (value.numerator, value.denominator) if value > 0
                         else "-\\dfrac{%d}{%d}" % (-value.numerator, value.denominator))
        if 10**6 % value.denominator == 0 and value.denominator != 1:
            forms.append(("%.6f" % value).rstrip("0").rstrip("."))
        forms.append("x = " + gold)
    elif "\\frac" in gold:
        forms.append(gold.replace("\\frac", "\\dfrac"))
    if ", " in gold:
        forms.append(gold.replace(", ", ","))
    elif "," in gold and "{,}" not in gold:
        forms.append(gold.replace(",", ", "))
    text = _TEXT_GOLD_RE.match(gold)
    if text:
        forms.append(text.group(1))
    return [f for f in forms if f != gold]


def labelled_cases(golds: Iterable[tuple[str, str]]) -> list[Case]:
    """The labelled cases of (problem_id, gold answer) pairs, in input order (see the module docstring)."""
    cases: list[Case] = []
    for pid, gold in golds:
        wrong = off_by_one(gold)

        def add(kind: str, response: str, should_pass: bool, pid: str = pid, gold: str = gold) -> None:
            cases.append(Case(pid, kind, response, gold, should_pass))

        add("verbatim", THINK + "The answer is $\\boxed{%s}$." % gold, True)
        add("self_correction", THINK + "So the answer is $\\boxed{%s}$. Wait, I made a slip in the last step; "
            "redoing it, the answer is $\\boxed{%s}$." % (wrong, gold), True)
        add("wrong_box_in_reasoning", "<think>First guess: \\boxed{%s}. No, that fails the check.</think>\n\n"
            "The answer is $\\boxed{%s}$." % (wrong, gold), True)
        add("trailing_period", THINK + "The answer is $\\boxed{%s.}$" % gold, True)
        add("textbf_wrapper", THINK + "**Answer:** $\\boxed{\\textbf{%s}}$" % gold, True)
        add("no_reasoning_block", "Working it out step by step gives $\\boxed{%s}$." % gold, True)
        for n, form in enumerate(equivalent_forms(gold)):
            add("equivalent_%d" % n, THINK + "The answer is $\\boxed{%s}$." % form, True)

        add("off_by_one", THINK + "The answer is $\\boxed{%s}$." % wrong, False)
        negated = wrong_sign(gold)
        if negated is not None:
            add("wrong_sign", THINK + "The answer is $\\boxed{%s}$." % negated, False)
        add("hedge_or", THINK + "The answer is $\\boxed{%s \\text{ or } %s}$." % (gold, wrong), False)
        if "," not in gold:
            add("hedge_comma", THINK + "The answer is $\\boxed{%s, %s}$." % (gold, wrong), False)
        add("empty_box", THINK + "The answer is $\\boxed{}$.", False)
        add("no_box", THINK + "The answer is $%s$." % gold, False)
        add("box_only_in_reasoning", "<think>It is \\boxed{%s}.</think>\n\nThe answer is $%s$." % (gold, gold), False)
        add("cut_in_think", "<think>It looks like \\boxed{%s}, but let me verify that by" % gold, False)
        add("last_box_wrong", THINK + "The answer is $\\boxed{%s}$. Hmm, actually it is $\\boxed{%s}$."
            % (gold, wrong), False)
    return cases


def error_rates(cases: list[Case], verdicts: list[Verdict]) -> dict[str, object]:
    """False-accept and false-reject rates (errors count as rejects), with the cases that went wrong."""
    positives = [(c, v) for c, v in zip(cases, verdicts, strict=True) if c.should_pass]
    negatives = [(c, v) for c, v in zip(cases, verdicts, strict=True) if not c.should_pass]
    false_accepts = [(c, v) for c, v in negatives if v.verdict == "pass"]
    false_rejects = [(c, v) for c, v in positives if v.verdict != "pass"]
    return {
        "cases": len(cases),
        "must_pass": len(positives),
        "must_fail": len(negatives),
        "false_accepts": len(false_accepts),
        "false_rejects": len(false_rejects),
        "false_accept_rate": len(false_accepts) / len(negatives) if negatives else 0.0,
        "false_reject_rate": len(false_rejects) / len(positives) if positives else 0.0,
        "false_accept_examples": [(c.problem_id, c.kind, c.gold, v.extracted) for c, v in false_accepts[:20]],
        "false_reject_examples": [(c.problem_id, c.kind, c.gold, v.reason) for c, v in false_rejects[:20]],
    }
