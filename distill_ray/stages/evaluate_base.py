"""The base-model evaluation of one student, in this process (`distill-ray evaluate`); the sweep queues the same
evaluation on the student's evaluation pool instead (sweep.start_pools).

Not guaranteed: that scores already under base/<student>/ are reused (evaluate_checkpoint decides that from its
output folder).
"""

from __future__ import annotations

from distill_ray import experiment as ex
from distill_ray.config import SweepConfig
from distill_ray.records import BenchmarkScore, Problem


def evaluate_base(sweep: SweepConfig, exp_dir: str, student_name: str,
                  benchmarks: dict[str, list[Problem]]) -> list[BenchmarkScore]:
    """Base-model scores of one student in this process (the sweep uses the student's evaluation pool instead)."""
    from distill_ray.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(sweep.students[student_name], None, benchmarks, sweep.evaluation, step=0, samples=0,
                               output_dir=ex.base_dir(exp_dir, student_name),
                               allow_network_risk=sweep.allow_network_risk)
