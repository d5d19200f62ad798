"""`distill-ray score math500|mbppplus ...`: score a samples file against a benchmark, write a JSON report.

    score_main(["math500", "--samples", "S.jsonl", "--dataset", "D.jsonl", "--output", "O.json"])
    score_main(["mbppplus", "--samples", "S.jsonl", "--dataset", "MbppPlus.jsonl.gz", "--output", "O.json"])

Without --dataset the public file is downloaded once, checked against its pinned sha256 and cached
(~/.cache/distill-ray, or $DISTILL_RAY_CACHE). Exit status: 0 when scoring finished (whatever the scores); 2 on bad
input, with a message naming the file, the line and the field; 3 when the sandbox cannot isolate programs on this host
(pass --allow-network-risk to accept running them without network isolation).

Not guaranteed: see math500.py and mbppplus.py.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from distill_ray.files import InputError, write_text


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="distill-ray score")
    sub = parser.add_subparsers(dest="benchmark", required=True)
    for name in ("math500", "mbppplus"):
        p = sub.add_parser(name)
        p.add_argument("--samples", required=True)
        p.add_argument("--dataset", default=None)
        p.add_argument("--output", required=True)
        p.add_argument("--workers", type=int, default=None)
        if name == "mbppplus":
            p.add_argument("--base-only", action="store_true")
            p.add_argument("--allow-network-risk", action="store_true")
            p.add_argument("--no-cache", action="store_true")
    return parser


def score_main(argv: list[str]) -> int:
    """Entry point of `distill-ray score` (argv excludes the word "score")."""
    args = _parser().parse_args(argv)
    started = time.monotonic()
    try:
        if args.benchmark == "math500":
            report = _math500(args)
        else:
            report = _mbppplus(args)
    except InputError as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 2
    except _Refused as exc:
        print("error: %s" % exc, file=sys.stderr)
        return 3
    report["summary"]["seconds"] = round(time.monotonic() - started, 3)
    write_text(args.output, json.dumps(report, indent=1))
    print(json.dumps({"benchmark": args.benchmark, **{k: v for k, v in report["summary"].items()
                                                     if not isinstance(v, dict)}}))
    return 0


class _Refused(RuntimeError):
    pass


def _math500(args: argparse.Namespace) -> dict:
    from distill_ray.pinned import MATH500_FILE, fetch_pinned
    from distill_ray.verify.math500 import check_samples, read_math500_answers, score_math500
    from distill_ray.verify.math_grader import MathGrader
    from distill_ray.verify.mbppplus import read_numbered_rows

    dataset = args.dataset or str(fetch_pinned(MATH500_FILE))
    problems = read_math500_answers(dataset)
    samples = read_numbered_rows(args.samples, ("unique_id", "response"))
    check_samples(args.samples, samples, problems)
    with MathGrader(args.workers) as grader:
        report = score_math500(samples, problems, grader)
    report["summary"]["dataset"] = dataset
    return report


def _mbppplus(args: argparse.Namespace) -> dict:
    from distill_ray.pinned import MBPPPLUS_FILE, fetch_pinned, file_sha256
    from distill_ray.verify.mbppplus import (
        ground_truth,
        read_mbppplus_tasks,
        read_numbered_rows,
        score_mbppplus,
    )
    from distill_ray.verify.sandbox import SandboxPool, SandboxRefused

    dataset = args.dataset or str(fetch_pinned(MBPPPLUS_FILE))
    tasks = read_mbppplus_tasks(dataset)
    samples = read_numbered_rows(args.samples, ("task_id",))
    for row in samples:
        if row["task_id"] not in tasks:
            raise InputError(args.samples, f"{row['task_id']!r} is not in the dataset", row["_line"], "task_id")
        if not isinstance(row.get("solution"), str) and not isinstance(row.get("completion"), str):
            raise InputError(args.samples, "field 'solution' or 'completion' (a string) is required", row["_line"])
    try:
        pool = SandboxPool(args.workers, allow_network_risk=args.allow_network_risk)
    except SandboxRefused as exc:
        raise _Refused(str(exc)) from None
    with pool:
        needed = {row["task_id"] for row in samples}
        truth = ground_truth({t: tasks[t] for t in needed} if needed else {}, pool,
                             None if args.no_cache else file_sha256(dataset))
        report = score_mbppplus(samples, tasks, pool, truth, base_only=args.base_only)
        report["summary"]["sandbox_layers"] = pool.layers
    report["summary"]["dataset"] = dataset
    return report


if __name__ == "__main__":
    sys.exit(score_main(sys.argv[1:]))
