"""The stages a sweep's trials share, each resumable on disk: benchmarks, problems, traces (generate + verify).

    from distill_ray.stages import prepare_benchmarks, prepare_problems, generate_and_verify
    benchmarks = prepare_benchmarks(sweep, exp_dir)
    problems = prepare_problems(sweep, exp_dir, "math", benchmarks)
    generate_and_verify(sweep, exp_dir, "sonnet", sweep.teachers["sonnet"], "math", problems)

Each stage reads and writes only the experiment directory (`distill_ray.experiment` names every path) and returns
what it left there; a stage whose marker exists returns its stored result without running. The CLI's `generate`,
`verify` and `evaluate` commands and the sweep call the same functions.

Not guaranteed: anything about stages run concurrently on one experiment directory (one driver per experiment).
"""

from __future__ import annotations

import os
import time
from typing import Any

from distill_ray import experiment as ex
from distill_ray.config import ConfigError, SweepConfig, TeacherConfig
from distill_ray.records import Problem, TracesDone, TrainExample


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
        return ex.read_jsonl(os.path.join(folder, "problems.jsonl"))
    config = sweep.domains[domain]
    kept, summary = read_and_clean(config.source, config.verifier, benchmarks,
                                   cache_dir=ex.cache_dir(exp_dir, "problems"),
                                   decontamination=sweep.decontamination.settings(),
                                   report_path=os.path.join(folder, "contamination.json"))
    ex.write_jsonl(os.path.join(folder, "problems.jsonl"), kept)
    ex.mark_done(folder, summary)
    log(f"problems[{domain}]: {summary.get('rows_read')} read, {len(kept)} kept, dropped {summary.get('dropped')}")
    return kept


def generate_stage(exp_dir: str, teacher_name: str, teacher: TeacherConfig, domain: str,
                   problems: list[Problem]) -> dict:
    """Raw traces of one (teacher, domain) under traces/<teacher>/<domain>/raw; resumable, never pays twice."""
    from distill_ray.teacher import generate_traces
    from distill_ray.teacher.stage import generation_done, record_generation

    folder = ex.traces_dir(exp_dir, teacher_name, domain)
    marker = os.path.join(folder, "generated.json")
    if generation_done(marker):
        return ex.read_json(marker)
    summary = generate_traces(problems, teacher_name, teacher, os.path.join(folder, "raw"),
                              cache_dir=ex.cache_dir(exp_dir, "teacher"),
                              progress_file=ex.generation_progress_file(exp_dir, teacher_name, domain))
    record_generation(marker, summary)  # only a complete stage is marked done; else GenerationIncomplete
    return summary


def verify_stage(sweep: SweepConfig, exp_dir: str, teacher_name: str, domain: str, problems: list[Problem], *,
                 force: bool = False) -> TracesDone:
    """The verify stage (distill_ray.verify.traces.verify_traces), with a log line when it ran."""
    from distill_ray.verify.traces import verify_traces

    ran = force or not ex.is_done(ex.traces_dir(exp_dir, teacher_name, domain))
    result = verify_traces(sweep, exp_dir, teacher_name, domain, problems, force=force)
    if ran:
        log(f"traces[{teacher_name}/{domain}]: {result['statistics'].get('n', 0)} verified rows, "
            f"pass rate {result['statistics'].get('pass_rate', float('nan')):.3f}")
    return result


def generate_and_verify(sweep: SweepConfig, exp_dir: str, teacher_name: str, teacher: TeacherConfig, domain: str,
                        problems: list[Problem]) -> TracesDone:
    """Traces of one (teacher, domain), generated then verified; returns the verify stage's result."""
    if not ex.is_done(ex.traces_dir(exp_dir, teacher_name, domain)):
        generate_stage(exp_dir, teacher_name, teacher, domain, problems)
    return verify_stage(sweep, exp_dir, teacher_name, domain, problems)


def training_examples(exp_dir: str, teacher: str, domain: str, policy: str = "drop") -> list[TrainExample]:
    """Verified, passing traces of a (teacher, domain) as training examples; truncated ones per the teacher's policy."""
    rows = ex.read_jsonl(os.path.join(ex.traces_dir(exp_dir, teacher, domain), "verified.jsonl"))
    keep = [r for r in rows if r["verdict"] == "pass" and (policy == "keep" or not r.get("truncated"))]
    return [TrainExample(id=f"{r['problem_id']}#{r['sample_index']}", prompt=r["prompt"], response=r["text"])
            for r in keep]


def evaluate_base(sweep: SweepConfig, exp_dir: str, student_name: str, benchmarks: dict[str, list[Problem]]) -> list:
    """Base-model scores of one student in this process (the sweep uses the student's evaluation pool instead)."""
    from distill_ray.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(sweep.students[student_name], None, benchmarks, sweep.evaluation, step=0, samples=0,
                               output_dir=ex.base_dir(exp_dir, student_name),
                               allow_network_risk=sweep.allow_network_risk)


def run_shared_stages(sweep: SweepConfig, exp_dir: str, clock: Any = None) -> dict[str, Any]:
    """Benchmarks, problems per domain, traces and verification per (teacher, domain); each a phase of `clock`
    (distill_ray.profile.PhaseClock) when given."""
    import contextlib
    import itertools

    def phase(name: str) -> Any:
        return clock.phase(name) if clock is not None else contextlib.nullcontext()

    with phase("benchmarks"):
        benchmarks = prepare_benchmarks(sweep, exp_dir)
    with phase("problems"):
        problems = {d: prepare_problems(sweep, exp_dir, d, benchmarks) for d in sweep.grid.domains}
    traces = {}
    for teacher, domain in itertools.product(sweep.grid.teachers, sweep.grid.domains):
        with phase(f"traces {teacher}/{domain} (generate + verify)"):
            traces[(teacher, domain)] = generate_and_verify(sweep, exp_dir, teacher, sweep.teachers[teacher],
                                                            domain, problems[domain])
    return {"benchmarks": benchmarks, "traces": traces}
