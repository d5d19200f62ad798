"""Shared run helpers of the sweep and the CLI: the log line, the secrets check, the built-in teacher server, and the
stages every trial shares (benchmarks, problems, traces), run once before any trial.

    from distill_ray.stages.run import run_shared_stages
    shared = run_shared_stages(sweep, exp_dir)      # {"benchmarks": {...}, "traces": {(teacher, domain): TracesDone}}

Each stage reads and writes only the experiment directory (`distill_ray.experiment` names every path) and returns
what it left there; a stage whose marker exists returns its stored result without running.

Not guaranteed: anything about stages run concurrently on one experiment directory (one driver per experiment).
"""

from __future__ import annotations

import os
import time
from typing import Any

from distill_ray import experiment as ex
from distill_ray.config import ConfigError, SweepConfig, TeacherConfig
from distill_ray.records import Problem, TracesDone


def log(message: str) -> None:
    print(f"[distill-ray {time.strftime('%H:%M:%S')}] {message}", flush=True)


def check_secrets(sweep: SweepConfig, file: str = "<sweep>") -> None:
    """Fail before anything starts when a teacher's API key variable is unset (the key itself is never read here)."""
    for name in sweep.grid.teachers:
        env = sweep.teachers[name].api_key_env
        if env and not os.environ.get(env):
            raise ConfigError(file, f"teachers.{name}.api_key_env",
                              f"environment variable {env} is not set (it must hold the provider's API key)")


def start_builtin_teachers(sweep: SweepConfig) -> tuple[Any, SweepConfig]:
    """Start the built-in teacher server when the sweep has builtin teachers; returns (server or None, sweep with
    their base_url filled in)."""
    builtin = {name: t for name, t in sweep.teachers.items() if t.provider == "builtin"}
    if not builtin:
        return None, sweep
    from distill_ray.teacher import start_teacher_server

    server = sweep.teacher_server
    handle = start_teacher_server(
        host=server.host, port=server.port,
        teachers={t.model: {"style": t.style, "correct_rate": t.correct_rate} for t in builtin.values()},
        faults=None)
    data = sweep.model_dump()
    for name in builtin:
        data["teachers"][name]["base_url"] = handle.base_url
    return handle, SweepConfig.model_validate(data)


def generate_and_verify(sweep: SweepConfig, exp_dir: str, teacher_name: str, teacher: TeacherConfig, domain: str,
                        problems: list[Problem]) -> TracesDone:
    """Traces of one (teacher, domain), generated then verified; returns the verify stage's result."""
    from distill_ray.stages.generate import generate_stage
    from distill_ray.stages.verify import verify_stage

    if not ex.is_done(ex.traces_dir(exp_dir, teacher_name, domain)):
        generate_stage(exp_dir, teacher_name, teacher, domain, problems)
    return verify_stage(sweep, exp_dir, teacher_name, domain, problems)


def run_shared_stages(sweep: SweepConfig, exp_dir: str) -> dict[str, Any]:
    """Benchmarks, problems per domain, traces and verification per (teacher, domain)."""
    import itertools

    from distill_ray.stages.problems import prepare_benchmarks, prepare_problems

    benchmarks = prepare_benchmarks(sweep, exp_dir)
    problems = {d: prepare_problems(sweep, exp_dir, d, benchmarks) for d in sweep.grid.domains}
    traces = {}
    for teacher, domain in itertools.product(sweep.grid.teachers, sweep.grid.domains):
        traces[(teacher, domain)] = generate_and_verify(sweep, exp_dir, teacher, sweep.teachers[teacher], domain,
                                                        problems[domain])
    return {"benchmarks": benchmarks, "traces": traces}
