"""Items per second of the math grader with its isolation on (worker processes with hard time limits).

    python benchmarks/score_math.py [--items 500] [--workers 2] [--dataset ../shared/benchmarks/math500.jsonl]

Builds MATH-style (response, gold) pairs: with the MATH-500 file when present, each gold answer boxed after a
reasoning block, plus a wrong and an unboxed variant; otherwise a synthetic set of fractions, decimals, tuples and
radicals. Target: 500 items in under 5 s on 2 cores. Last stdout line is JSON. Pool start-up is reported apart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from distill_ray.verify.math_grader import MathGrader  # noqa: E402

DEFAULT_DATASET = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "benchmarks", "math500.jsonl")


def items(n: int, dataset: str) -> list[tuple[str, str]]:
    golds = []
    if os.path.exists(dataset):
        golds = [json.loads(line)["answer"] for line in open(dataset)]
    else:
        for i in range(200):
            golds += [str(i), "\\frac{%d}{%d}" % (i + 1, i + 2), "(%d, %d)" % (i, i + 1), "%d\\sqrt{2}" % (i + 1)]
    out = []
    i = 0
    while len(out) < n:
        gold = golds[(i // 3) % len(golds)]
        kind = i % 3
        if kind == 0:
            out.append(("<think>work</think>\n\nThe answer is $\\boxed{%s}$." % gold, gold))
        elif kind == 1:
            out.append(("<think>work</think>\n\nThe answer is $\\boxed{%s+1}$." % gold, gold))
        else:
            out.append(("<think>work</think>\n\nThe answer is %s." % gold, gold))
        i += 1
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=500)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--dataset", default=DEFAULT_DATASET)
    args = parser.parse_args()
    pairs = items(args.items, args.dataset)
    started = time.monotonic()
    grader = MathGrader(args.workers)
    grader.grade(pairs[0][0], pairs[0][1])  # waits for the workers to import math-verify
    startup = time.monotonic() - started
    started = time.monotonic()
    verdicts = grader.grade_many(pairs)
    elapsed = time.monotonic() - started
    grader.close()
    print(json.dumps({
        "benchmark": "score_math",
        "items": len(pairs),
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "seconds": round(elapsed, 3),
        "items_per_s": round(len(pairs) / elapsed, 1),
        "startup_s": round(startup, 3),
        "passed": sum(v.verdict == "pass" for v in verdicts),
        "errors": sum(v.verdict == "error" for v in verdicts),
        "timeouts": sum(v.reason == "grader_timeout" for v in verdicts),
        "target_met": elapsed < 5.0 and len(pairs) >= 500,
    }))


if __name__ == "__main__":
    main()
