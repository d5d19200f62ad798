"""Items per second of the math grader with its isolation on (worker processes with hard time limits).

    python benchmarks/score_math.py [--items 500] [--workers 2] [--rounds 1] [--dataset PATH/math500.jsonl]

Builds MATH-style (response, gold) pairs from the MATH-500 file when present (else a synthetic set of fractions,
decimals, tuples and radicals): gold i goes to item i, and item i is, in turn, a right answer, a wrong answer or an
unboxed answer, so every gold answer of the file is graded once in 500 items. Right answers come in the forms models
write (the gold verbatim, `\\dfrac` for `\\frac`, a decimal or `x = ` for plain numbers, other spacing after commas);
wrong ones are another number for plain numbers and `gold + 1` otherwise. Each response has a reasoning block with a
discarded box in it. `--rounds N` grades the same items N times in one pool (a checkpoint re-grading a benchmark), and
reports each round. Target: 500 items in under 5 s on 2 cores (round 1). Pool start-up (workers importing and
warming up math-verify) is reported apart.

Then the judge's error rates on the labelled set built from the same file (`distill_ray.verify.math_labelled`: for
every gold, rewrites that must pass and near-misses that must fail): `false_accept_rate` (target <= 0.005),
`false_reject_rate` (target <= 0.015), and the slowest single case (target <= 2 s; each case is timed on its own,
several in flight at once as in the sweep). `--no-labelled` skips it. Last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distill_ray.verify.math_grader import MathGrader, as_rational  # noqa: E402
from distill_ray.verify.math_labelled import error_rates, labelled_cases  # noqa: E402

DEFAULT_DATASET = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "benchmarks", "math500.jsonl")
THINK = "<think>Let me see. Perhaps \\boxed{0}? No, recompute.</think>\n\n"


def _latex(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    sign = "-" if value < 0 else ""
    return "%s\\frac{%d}{%d}" % (sign, abs(value.numerator), value.denominator)


def right_form(gold: str, i: int) -> str:
    """The gold answer as a model might write it: verbatim or in another equivalent form."""
    value = as_rational(gold)
    variant = (i // 3) % 4
    if value is not None:
        if variant == 1 and value.denominator != 1:
            return "\\dfrac{%d}{%d}" % (value.numerator, value.denominator)
        if variant == 2 and 10**6 % value.denominator == 0:
            return ("%.6f" % value).rstrip("0").rstrip(".")
        if variant == 3:
            return "x = " + gold
        return gold
    if variant == 1 and "\\frac" in gold:
        return gold.replace("\\frac", "\\dfrac")
    if variant == 2 and "," in gold:
        return gold.replace(", ", ",") if ", " in gold else gold.replace(",", ", ")
    return gold


def wrong_form(gold: str) -> str:
    value = as_rational(gold)
    if value is not None:
        return _latex(value + 1)
    return gold + "+1"


def items(n: int, dataset: str) -> list[tuple[str, str]]:
    golds = []
    if os.path.exists(dataset):
        golds = [json.loads(line)["answer"] for line in open(dataset)]
    else:
        for i in range(200):
            golds += [str(i), "\\frac{%d}{%d}" % (i + 1, i + 2), "(%d, %d)" % (i, i + 1), "%d\\sqrt{2}" % (i + 1)]
    out = []
    for i in range(n):
        gold = golds[i % len(golds)]
        kind = i % 3
        if kind == 0:
            out.append((THINK + "The answer is $\\boxed{%s}$." % right_form(gold, i), gold))
        elif kind == 1:
            out.append((THINK + "The answer is $\\boxed{%s}$." % wrong_form(gold), gold))
        else:
            out.append((THINK + "The answer is %s." % gold, gold))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    parser.add_argument("--no-labelled", action="store_true")
    args = parser.parse_args()
    pairs = items(args.items, args.dataset)
    started = time.monotonic()
    grader = MathGrader(args.workers)
    # wait until every worker has started: one math-verify comparison per worker, all at once
    with ThreadPoolExecutor(args.workers) as pool:
        list(pool.map(lambda _: grader.compare("\\sqrt{2}", "\\frac{\\sqrt{8}}{2}"), range(args.workers)))
    startup = time.monotonic() - started
    rounds = []
    for _ in range(args.rounds):
        started = time.monotonic()
        verdicts = grader.grade_many(pairs)
        rounds.append(time.monotonic() - started)
    labelled = None if args.no_labelled or not os.path.exists(args.dataset) else labelled_rates(grader, args)
    grader.close()
    elapsed = rounds[0]
    reasons: dict[str, int] = {}
    for v in verdicts:
        reasons[v.reason] = reasons.get(v.reason, 0) + 1
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = None
    print(json.dumps({
        "benchmark": "score_math",
        "items": len(pairs),
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "loadavg": load,
        "seconds": round(elapsed, 3),
        "items_per_s": round(len(pairs) / elapsed, 1),
        "rounds_s": [round(r, 3) for r in rounds],
        "startup_s": round(startup, 3),
        "passed": sum(v.verdict == "pass" for v in verdicts),
        "reasons": dict(sorted(reasons.items())),
        "errors": sum(v.verdict == "error" for v in verdicts),
        "timeouts": sum(v.reason == "grader_timeout" for v in verdicts),
        "target_met": elapsed < 5.0 and len(pairs) >= 500,
        **(labelled or {}),
    }))


def labelled_rates(grader: MathGrader, args: argparse.Namespace) -> dict:
    rows = [json.loads(line) for line in open(args.dataset) if line.strip()]
    cases = labelled_cases([(row["unique_id"], row["answer"]) for row in rows])

    def timed(case):
        started = time.monotonic()
        verdict = grader.grade(case.response, case.gold)
        return verdict, time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(args.workers) as pool:
        results = list(pool.map(timed, cases))
    rates = error_rates(cases, [v for v, _ in results])
    times = [t for _, t in results]
    return {
        "labelled_cases": rates["cases"],
        "labelled_must_pass": rates["must_pass"],
        "labelled_must_fail": rates["must_fail"],
        "false_accepts": rates["false_accepts"],
        "false_rejects": rates["false_rejects"],
        "false_accept_rate": round(rates["false_accept_rate"], 5),
        "false_reject_rate": round(rates["false_reject_rate"], 5),
        "false_accept_examples": rates["false_accept_examples"][:5],
        "false_reject_examples": rates["false_reject_examples"][:5],
        "labelled_seconds": round(time.monotonic() - started, 2),
        "slowest_case_s": round(max(times), 3),
        "cases_over_2s": sum(t > 2.0 for t in times),
        "labelled_targets_met": rates["false_accept_rate"] <= 0.005 and rates["false_reject_rate"] <= 0.015
        and max(times) <= 2.0,
    }


if __name__ == "__main__":
    main()
