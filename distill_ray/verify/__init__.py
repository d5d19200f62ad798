"""Verification and scoring: the math grader, the code sandbox and judge, the verify stage and statistics.

Public entry points: `grade_math`, `check_code`, `verify_rows` (local), `verify_dataset` (Ray Data),
`trace_statistics`, `Verdict`; the scorers live in `distill_ray.verify.score_cli` (`score_main`).
Importing this package starts nothing: pools start on first use.
"""

from distill_ray.verify.batch import VerifyBatch, verify_dataset, verify_rows
from distill_ray.verify.code import check_code, check_program, extract_code
from distill_ray.verify.math_grader import MathGrader, extract_final_answer, grade_math
from distill_ray.verify.sandbox import SandboxLimits, SandboxPool, SandboxRefused, probe_layers
from distill_ray.verify.stats import trace_statistics, wilson_interval
from distill_ray.verify.verdict import Verdict

__all__ = [
    "MathGrader",
    "SandboxLimits",
    "SandboxPool",
    "SandboxRefused",
    "Verdict",
    "VerifyBatch",
    "check_code",
    "check_program",
    "extract_code",
    "extract_final_answer",
    "grade_math",
    "probe_layers",
    "trace_statistics",
    "verify_dataset",
    "verify_rows",
    "wilson_interval",
]
