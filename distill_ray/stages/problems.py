"""The problems stage: the sweep's benchmark items kept in the experiment, and each domain's training problems.

    benchmarks = prepare_benchmarks(sweep, exp_dir)                 # benchmarks/<name>.jsonl, written once
    problems = prepare_problems(sweep, exp_dir, "math", benchmarks)  # problems/<domain>/problems.jsonl + done.json

Not guaranteed: that a benchmark file already in the experiment matches today's loader (it is kept as written, so
trials and the report of one experiment see the same items).
"""

from __future__ import annotations

import os

from distill_ray import experiment as ex
from distill_ray.config import SweepConfig
from distill_ray.records import Problem
from distill_ray.stages.run import log


def prepare_benchmarks(sweep: SweepConfig, exp_dir: str) -> dict[str, list[Problem]]:
    """Load every benchmark once and keep a copy in the experiment, so trials and the report see the same items."""
    from distill_ray.evaluate import load_benchmark

    benchmarks: dict[str, list[Problem]] = {}
    for bench in sweep.evaluation.benchmarks:
        path = ex.benchmark_file(exp_dir, bench.name)
        if not os.path.exists(path):
            ex.write_jsonl(path, list(load_benchmark(bench)))
        benchmarks[bench.name] = ex.read_jsonl(path)
    return benchmarks


def read_benchmarks(sweep: SweepConfig, exp_dir: str) -> dict[str, list[Problem]]:
    """The benchmark items prepare_benchmarks left in the experiment (it must have run)."""
    return {b.name: ex.read_jsonl(ex.benchmark_file(exp_dir, b.name)) for b in sweep.evaluation.benchmarks}


def prepare_problems(sweep: SweepConfig, exp_dir: str, domain: str,
                     benchmarks: dict[str, list[Problem]]) -> list[Problem]:
    """Training problems of a domain: loaded, deduplicated and decontaminated against every benchmark of the sweep."""
    from distill_ray.problems.clean import prepare_problems as read_and_clean

    folder = ex.problems_dir(exp_dir, domain)
    if ex.is_done(folder):
        return ex.read_jsonl(ex.problems_file(exp_dir, domain))
    config = sweep.domains[domain]
    kept, summary = read_and_clean(config.source, config.verifier, benchmarks,
                                   cache_dir=ex.cache_dir(exp_dir, "problems"),
                                   decontamination=sweep.decontamination.settings(),
                                   report_path=ex.contamination_file(exp_dir, domain))
    ex.write_jsonl(ex.problems_file(exp_dir, domain), kept)
    ex.mark_done(folder, summary)
    log(f"problems[{domain}]: {summary.get('rows_read')} read, {len(kept)} kept, dropped {summary.get('dropped')}")
    return kept
