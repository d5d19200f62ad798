"""Our MBPP+ scorer against `evalplus.evaluate` on the same samples, same machine, one run each.

    python benchmarks/score_mbppplus.py [--dataset ../shared/benchmarks/MbppPlus-v0.2.0.jsonl.gz] [--tasks 378]

Samples: each task's canonical solution (honest), so both must pass everything; verdict agreement is checked per
(task, base/plus). Both sides get their ground truth cached first (evalplus in its own cache via
MBPP_OVERRIDE_PATH, ours in a temporary cache), so the timed runs compare evaluation, not set-up. --tasks takes the
first N tasks (evalplus then needs a file with only those tasks, written to a temporary directory).
Target: ours at least 2x faster at identical verdicts. Last stdout line is JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import gzip
import io
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT = os.path.join(ROOT, "..", "shared", "benchmarks", "MbppPlus-v0.2.0.jsonl.gz")


def run_ours(dataset: str, samples: str, out: str, cache: str, workers: int) -> float:
    env = dict(os.environ, DISTILL_RAY_CACHE=cache, PYTHONPATH=ROOT)
    cmd = [sys.executable, "-m", "distill_ray.verify.score_cli", "mbppplus", "--samples", samples, "--dataset",
           dataset, "--output", out, "--workers", str(workers)]
    started = time.monotonic()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def run_evalplus(dataset_jsonl: str, samples: str, workers: int) -> float:
    code = ("import sys; from evalplus.evaluate import evaluate; "
            "evaluate('mbpp', samples=sys.argv[1], parallel=int(sys.argv[2]), i_just_wanna_run=True)")
    env = dict(os.environ, MBPP_OVERRIDE_PATH=dataset_jsonl)
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-c", code, samples, str(workers)], env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, input=b"y\n")
    if proc.returncode != 0:
        raise RuntimeError("evalplus failed")
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--dataset", default=DEFAULT)
    parser.add_argument("--tasks", type=int, default=378)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with gzip.open(args.dataset, "rt") as f:
        rows = [json.loads(line) for line in f][: args.tasks]
    with tempfile.TemporaryDirectory() as tmp:
        dataset_jsonl = os.path.join(tmp, "MbppPlus.jsonl")
        with open(dataset_jsonl, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
        samples = os.path.join(tmp, "samples.jsonl")
        with open(samples, "w") as f:
            f.writelines(json.dumps({"task_id": r["task_id"], "solution": r["prompt"] + r["canonical_solution"]})
                         + "\n" for r in rows)
        cache = os.path.join(tmp, "cache")
        ours_out = os.path.join(tmp, "ours.json")
        warm_ours = run_ours(dataset_jsonl, samples, ours_out, cache, args.workers)  # computes and caches truth
        ours_s = run_ours(dataset_jsonl, samples, ours_out, cache, args.workers)
        with contextlib.redirect_stdout(io.StringIO()):
            warm_theirs = run_evalplus(dataset_jsonl, samples, args.workers)  # computes and caches truth
        theirs_s = run_evalplus(dataset_jsonl, samples, args.workers)
        ours = json.load(open(ours_out))["eval"]
        theirs = json.load(open(samples.replace(".jsonl", "_eval_results.json")))["eval"]
    agree = total = 0
    for tid, results in theirs.items():
        for a, b in zip(ours[tid], results):
            total += 2
            agree += (a["base_status"] == b["base_status"]) + (a["plus_status"] == b["plus_status"])
    print(json.dumps({
        "benchmark": "score_mbppplus",
        "tasks": len(rows),
        "workers": args.workers,
        "cpus": os.cpu_count(),
        "ours_s": round(ours_s, 2),
        "evalplus_s": round(theirs_s, 2),
        "speedup": round(theirs_s / ours_s, 2),
        "first_run_ours_s": round(warm_ours, 2),
        "first_run_evalplus_s": round(warm_theirs, 2),
        "verdicts_compared": total,
        "verdicts_identical": agree,
        "target_met": agree == total and theirs_s / ours_s >= 2.0,
    }))


if __name__ == "__main__":
    main()
