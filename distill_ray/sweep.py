"""The whole study as one Ray Tune experiment: problems → traces → verified traces → trials (train + evaluate) → report.

    from distill_ray.config import load_sweep
    from distill_ray.sweep import run_sweep
    run_sweep(load_sweep("sweeps/local.yaml"))          # or: distill-ray sweep sweeps/local.yaml

Stages shared by trials run once, before Tune starts, and leave their outputs in the experiment directory
(`storage/name`): problems per domain, traces and verified traces per (teacher, domain), base-model scores per student.
Each stage writes a `done.json` marker last, so an interrupted run resumes at the first unfinished stage and a finished
stage is never redone (paid teacher responses are additionally kept in the teacher cache). Each Tune trial trains one
(teacher, student, domain[, extra axes]) adapter with Ray Train and evaluates every checkpoint; its per-checkpoint rows
go to `trials/<trial>/results.jsonl`, which the report reads, so a report works on a running experiment too.

Not guaranteed: exactly-once training steps across a crash of the *driver* (trials resume from their last checkpoint,
so steps after it are recomputed, not double-counted); identical numbers across different hardware.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from typing import Any

from distill_ray.config import StudentConfig, SweepConfig, TeacherConfig, trial_config
from distill_ray.records import Problem, TrainExample

# ---------------------------------------------------------------------------------------------------------- helpers


def _write_json(path: str, data: Any) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(data, handle, indent=1, default=str)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def _write_jsonl(path: str, rows: list[dict]) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row) + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def _read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def _done(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, "done.json"))


def _log(message: str) -> None:
    print(f"[distill-ray {time.strftime('%H:%M:%S')}] {message}", flush=True)


def trial_name(teacher: str, student: str, domain: str, extra: dict[str, Any]) -> str:
    suffix = "".join(f"_{key.rsplit('.', 1)[-1]}={value}" for key, value in sorted(extra.items()))
    return f"{teacher}__{student}__{domain}{suffix}"


def grid_trials(sweep: SweepConfig) -> list[dict[str, Any]]:
    """Every trial of the grid: teacher × student × domain × each extra axis."""
    extra_keys = sorted(sweep.grid.extra)
    extra_values = [sweep.grid.extra[k] for k in extra_keys] or [[]]
    trials = []
    for teacher, student, domain in itertools.product(sweep.grid.teachers, sweep.grid.students, sweep.grid.domains):
        combos = itertools.product(*extra_values) if extra_keys else [()]
        for combo in combos:
            extra = dict(zip(extra_keys, combo, strict=True))
            trials.append({"teacher": teacher, "student": student, "domain": domain, "extra": extra,
                           "name": trial_name(teacher, student, domain, extra)})
    return trials


# Planning figures for --dry-run; estimates, stated as such in the plan's "assumptions".
ACTIVE_PARAMETERS = {"Qwen/Qwen3-30B-A3B-Base": 3.3e9, "Qwen/Qwen3-30B-A3B": 3.3e9,
                     "meta-llama/Llama-3.1-8B-Instruct": 8.0e9, "meta-llama/Llama-3.1-8B": 8.0e9}
PEAK_BF16_FLOPS = 989e12  # H100 SXM / H200 dense bf16
ASSUMED_MFU = 0.30
ASSUMED_DECODE_MFU = 0.05  # batched decoding is memory-bound
EVAL_ITEMS = {"math500": 500, "mbppplus": 378}
EVAL_TOKENS_PER_ITEM = 1000
# Below this many traces, judging in the driver beats starting Ray Data actors.
RAY_DATA_VERIFY_MIN_ROWS = 5000

# ----------------------------------------------------------------------------------------------------------- stages


def prepare_benchmarks(sweep: SweepConfig, exp_dir: str) -> dict[str, list[Problem]]:
    """Load every benchmark once and keep a copy in the experiment, so trials and the report see the same items."""
    from distill_ray.evaluate import load_benchmark

    benchmarks: dict[str, list[Problem]] = {}
    for bench in sweep.evaluation.benchmarks:
        path = os.path.join(exp_dir, "benchmarks", f"{bench.name}.jsonl")
        if not os.path.exists(path):
            _write_jsonl(path, list(load_benchmark(bench)))
        benchmarks[bench.name] = _read_jsonl(path)
    return benchmarks


def prepare_problems(sweep: SweepConfig, exp_dir: str, domain: str,
                     benchmarks: dict[str, list[Problem]]) -> list[Problem]:
    """Training problems of a domain: loaded, deduplicated and decontaminated against every benchmark of the sweep."""
    from distill_ray.problems.clean import prepare_problems as read_and_clean

    folder = os.path.join(exp_dir, "problems", domain)
    if _done(folder):
        return _read_jsonl(os.path.join(folder, "problems.jsonl"))
    config = sweep.domains[domain]
    kept, summary = read_and_clean(config.source, config.verifier, benchmarks,
                                   cache_dir=os.path.join(exp_dir, "cache", "problems"),
                                   report_path=os.path.join(folder, "contamination.json"))
    _write_jsonl(os.path.join(folder, "problems.jsonl"), kept)
    _write_json(os.path.join(folder, "done.json"), summary)
    _log(f"problems[{domain}]: {summary.get('rows_read')} read, {len(kept)} kept, dropped {summary.get('dropped')}")
    return kept


def _read_parquet_rows(folder: str) -> list[dict]:
    from distill_ray.teacher.parts import read_traces

    return read_traces(folder)  # traces.parquet and/or part files, one current row per (problem, sample)


def generate_stage(exp_dir: str, teacher_name: str, teacher: TeacherConfig, domain: str,
                   problems: list[Problem]) -> dict:
    """Raw traces of one (teacher, domain) under traces/<teacher>/<domain>/raw; resumable, never pays twice."""
    from distill_ray.teacher import generate_traces
    from distill_ray.teacher.stage import generation_done, record_generation

    folder = os.path.join(exp_dir, "traces", teacher_name, domain)
    marker = os.path.join(folder, "generated.json")
    if generation_done(marker):
        return _read_json(marker)
    summary = generate_traces(problems, teacher_name, teacher, os.path.join(folder, "raw"),
                              cache_dir=os.path.join(exp_dir, "cache", "teacher"))
    record_generation(marker, summary)  # only a complete stage is marked done; else GenerationIncomplete
    return summary


def _verify(rows: list[dict], allow_network_risk: bool) -> list[dict]:
    """Judge rows here, or across the cluster with Ray Data when there are many and a cluster is attached."""
    import ray

    from distill_ray.verify import verify_dataset, verify_rows
    from distill_ray.verify.sandbox import shared_pool

    if ray.is_initialized() and len(rows) >= RAY_DATA_VERIFY_MIN_ROWS:
        nodes = max(1, len([n for n in ray.nodes() if n.get("Alive")]))
        ds = verify_dataset(ray.data.from_items(rows), concurrency=nodes, allow_network_risk=allow_network_risk)
        order = {(r["problem_id"], r["sample_index"]): i for i, r in enumerate(rows)}
        return sorted(ds.take_all(), key=lambda r: order[(r["problem_id"], r["sample_index"])])
    return verify_rows(rows, pool=shared_pool(allow_network_risk))


def verify_stage(sweep: SweepConfig, exp_dir: str, teacher_name: str, domain: str, problems: list[Problem], *,
                 force: bool = False) -> dict:
    """Verify the raw traces of one (teacher, domain): verified.jsonl and statistics in done.json."""
    from distill_ray.verify import trace_statistics

    folder = os.path.join(exp_dir, "traces", teacher_name, domain)
    if _done(folder) and not force:
        return _read_json(os.path.join(folder, "done.json"))
    if not os.path.exists(os.path.join(folder, "generated.json")):
        raise FileNotFoundError(f"{folder}: no generated traces yet (run `distill-ray generate` first)")
    traces = _read_parquet_rows(os.path.join(folder, "raw"))
    by_id = {p["id"]: p for p in problems}
    answered = [t for t in traces if t["status"] == "ok" and t["problem_id"] in by_id]
    rows = [{**t, "answer": by_id[t["problem_id"]]["answer"], "tests": by_id[t["problem_id"]]["tests"]}
            for t in answered]
    verified = _verify(rows, sweep.allow_network_risk)
    _write_jsonl(os.path.join(folder, "verified.jsonl"), verified)
    stats = trace_statistics(verified)
    key = next(iter(stats)) if stats else None
    result = {"generation": _read_json(os.path.join(folder, "generated.json")),
              "statistics": stats.get(key, {}) if key else {},
              "failed_requests": len(traces) - len(answered), "teacher": teacher_name, "domain": domain}
    _write_json(os.path.join(folder, "done.json"), result)
    _log(f"traces[{teacher_name}/{domain}]: {len(verified)} verified rows, "
         f"pass rate {result['statistics'].get('pass_rate', float('nan')):.3f}")
    return result


def generate_and_verify(sweep: SweepConfig, exp_dir: str, teacher_name: str, teacher: TeacherConfig, domain: str,
                        problems: list[Problem]) -> dict:
    """Traces of one (teacher, domain), generated then verified; returns the verify stage's result."""
    if not _done(os.path.join(exp_dir, "traces", teacher_name, domain)):
        generate_stage(exp_dir, teacher_name, teacher, domain, problems)
    return verify_stage(sweep, exp_dir, teacher_name, domain, problems)


def training_examples(exp_dir: str, teacher: str, domain: str, policy: str = "drop") -> list[TrainExample]:
    """Verified, passing traces of a (teacher, domain) as training examples; truncated ones per the teacher's policy."""
    rows = _read_jsonl(os.path.join(exp_dir, "traces", teacher, domain, "verified.jsonl"))
    keep = [r for r in rows if r["verdict"] == "pass" and (policy == "keep" or not r.get("truncated"))]
    return [TrainExample(id=f"{r['problem_id']}#{r['sample_index']}", prompt=r["prompt"], response=r["text"])
            for r in keep]


def evaluate_base(sweep: SweepConfig, exp_dir: str, student_name: str, benchmarks: dict[str, list[Problem]]) -> list:
    from distill_ray.evaluate import evaluate_checkpoint

    return evaluate_checkpoint(sweep.students[student_name], None, benchmarks, sweep.evaluation, step=0, samples=0,
                               output_dir=os.path.join(exp_dir, "base", student_name),
                               allow_network_risk=sweep.allow_network_risk)


def _scores_row(scores: list[dict]) -> dict[str, Any]:
    row: dict[str, Any] = {}
    for s in scores:
        b = s["benchmark"]
        row.update({f"{b}/accuracy": s["accuracy"], f"{b}/ci95_low": s["ci95_low"], f"{b}/ci95_high": s["ci95_high"],
                    f"{b}/n": s["n"], f"{b}/format_failure_rate": s["format_failures"] / s["n"] if s["n"] else 0.0})
    return row


def run_trial(config: dict[str, Any], *, sweep_data: dict, exp_dir: str, use_ray_train: bool = True) -> dict:
    """One trial: train the adapter on its (teacher, domain) traces, evaluate every checkpoint, report each.

    Reads only its arguments. Resumes from the trial folder: a finished trial returns its saved rows; training resumes
    from its last checkpoint; evaluated checkpoints are not evaluated again.
    """
    from distill_ray.config import sweep_from_dict
    from distill_ray.evaluate import evaluate_checkpoint, make_engine
    from distill_ray.train import train_student

    config = config.get("trial", config)  # Tune passes {"trial": {...}} from the grid's param_space
    sweep = trial_config(sweep_from_dict(sweep_data, "<trial>"), config.get("extra", {}))
    folder = os.path.join(exp_dir, "trials", config["name"])
    results_path = os.path.join(folder, "results.jsonl")
    if _done(folder):
        rows = _read_jsonl(results_path)
        _report_to_tune(rows[-1] if rows else {})
        return rows[-1] if rows else {}
    teacher = sweep.teachers[config["teacher"]]
    student: StudentConfig = sweep.students[config["student"]]
    from distill_ray.teacher.stage import check_trainable

    check_trainable(exp_dir, config["teacher"], config["domain"], teacher.max_failure_share)
    examples = training_examples(exp_dir, config["teacher"], config["domain"], teacher.truncation_policy)
    if not examples:
        raise RuntimeError(f"trial {config['name']}: no verified training examples for "
                           f"{config['teacher']}/{config['domain']}")
    train = train_student(examples, student, sweep.training, os.path.join(folder, "train"), use_ray=use_ray_train,
                          resume=True)
    benchmarks = {name: _read_jsonl(os.path.join(exp_dir, "benchmarks", f"{name}.jsonl"))
                  for name in (b.name for b in sweep.evaluation.benchmarks)}
    rows = []
    engine = None  # loaded once, on the first checkpoint not yet evaluated, and reused for the rest
    for ckpt in train["checkpoints"]:
        eval_dir = os.path.join(folder, "eval", f"step-{ckpt['step']:06d}")
        if engine is None and not os.path.exists(os.path.join(eval_dir, "scores.json")):
            engine = make_engine(student, sweep.evaluation)
        scores = evaluate_checkpoint(student, ckpt["path"], benchmarks, sweep.evaluation, step=ckpt["step"],
                                     samples=ckpt["samples"], output_dir=eval_dir,
                                     allow_network_risk=sweep.allow_network_risk, engine=engine)
        row = {"trial": config["name"], "teacher": config["teacher"], "student": config["student"],
               "domain": config["domain"], **{f"extra/{k}": v for k, v in config.get("extra", {}).items()},
               "step": ckpt["step"], "samples": ckpt["samples"], "train_loss": ckpt["train_loss"],
               "examples": len(examples), "truncated_examples": train.get("truncated_examples", 0),
               **_scores_row(scores)}
        rows.append(row)
        _report_to_tune(row)
    _write_jsonl(results_path, rows)
    _write_json(os.path.join(folder, "done.json"), {"rows": len(rows), "train": {
        k: v for k, v in train.items() if k != "checkpoints"}})
    return rows[-1] if rows else {}


def _report_to_tune(row: dict) -> None:
    from ray import tune

    try:
        tune.report({k: v for k, v in row.items() if isinstance(v, int | float)})
    except RuntimeError:
        pass  # called outside a Tune session (stage run alone): nothing to report to


# ------------------------------------------------------------------------------------------------------------- plan


def plan_sweep(sweep: SweepConfig) -> dict:
    """What a run would do, without running anything: stages, trials, requests, tokens, dollars, GPU-hours."""
    trials = grid_trials(sweep)
    teachers: dict[str, dict] = {}
    for name in sweep.grid.teachers:
        t = sweep.teachers[name]
        requests = 0
        for domain in sweep.grid.domains:
            requests += sweep.domains[domain].source.n * t.samples_per_problem
        est_in, est_out = 200, min(t.sampling.max_tokens, 2000)  # assumption: typical prompt and trace lengths
        teachers[name] = {
            "model": t.model, "requests": requests,
            "est_prompt_tokens": requests * est_in, "est_completion_tokens": requests * est_out,
            "est_cost_usd": round(requests * (est_in * t.price.input_per_mtok + est_out * t.price.output_per_mtok)
                                  / 1e6, 2),
            "max_cost_usd": t.max_cost_usd,
        }
    per_trial = []
    for trial in trials:
        config = trial_config(sweep, trial["extra"])
        student = config.students[trial["student"]]
        training = config.training
        tokens = training.samples * min(training.max_length, 1000)
        gpus = student.num_workers * student.gpus_per_worker
        checkpoints = len(set(range(training.checkpoint_every, training.steps + 1, training.checkpoint_every))
                          | {training.steps})
        active = ACTIVE_PARAMETERS.get(student.model)
        gpu_hours = None
        if active and gpus:
            # LoRA: forward plus input-gradient backward over frozen weights = 4 x active params FLOPs per token
            train_s = 4 * active * tokens / (PEAK_BF16_FLOPS * ASSUMED_MFU)
            eval_tokens = (checkpoints + 1) * sum(EVAL_ITEMS.get(b.name, b.subset or 100) for b in
                                                  config.evaluation.benchmarks) * EVAL_TOKENS_PER_ITEM
            eval_s = 2 * active * eval_tokens / (PEAK_BF16_FLOPS * ASSUMED_DECODE_MFU)
            gpu_hours = round(gpus * train_s / 3600 + eval_s / 3600, 1)
        per_trial.append({"trial": trial["name"], "steps": training.steps, "checkpoints": checkpoints,
                          "train_tokens_est": tokens, "gpus": gpus, "gpu_hours_est": gpu_hours})
    return {
        "experiment_dir": sweep.experiment_dir(),
        "stages": ["problems", "generate", "verify", "evaluate-base", "trials(train+evaluate)", "report"],
        "trials": len(trials), "teachers": teachers, "per_trial": per_trial,
        "evaluations_per_trial": len(sweep.evaluation.benchmarks),
        "assumptions": "teacher tokens: 200 prompt and min(max_tokens, 2000) completion per request; training: "
                       "min(max_length, 1000) tokens per example, 4 x active parameters FLOPs per token at "
                       f"{ASSUMED_MFU:.0%} of {PEAK_BF16_FLOPS / 1e12:.0f} TFLOP/s per GPU; evaluation: "
                       f"{EVAL_TOKENS_PER_ITEM} tokens per item at {ASSUMED_DECODE_MFU:.0%} MFU; "
                       "GPU-hours only for students with known active parameter counts",
    }


# -------------------------------------------------------------------------------------------------------------- run


def _start_builtin_teachers(sweep: SweepConfig) -> tuple[Any, SweepConfig]:
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


def _progress_callback(total: int) -> Any:
    """A Tune callback printing one line whenever a trial finishes or fails, with the experiment's running totals."""
    from ray import tune

    class Progress(tune.Callback):
        def __init__(self) -> None:
            self.done: set[str] = set()
            self.failed: set[str] = set()

        def _line(self, trial, verb: str, trials) -> None:
            running = sum(1 for t in trials if t.status == "RUNNING")
            name = trial.config.get("trial", {}).get("name", str(trial))
            _log(f"trial {name} {verb}: {len(self.done)}/{total} done, {running} running, "
                 f"{len(self.failed)} failed")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done.add(trial.trial_id)
            self._line(trial, "finished", trials)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.failed.add(trial.trial_id)
            self._line(trial, f"FAILED ({trial.error_file})", trials)

    return Progress()


def trainable_for(exp_dir: str, sweep: SweepConfig | None = None) -> Any:
    """The Tune trainable of an experiment, e.g. to restore its ResultGrid:

        from ray import tune
        from distill_ray.sweep import trainable_for
        grid = tune.Tuner.restore("runs/local/tune", trainable=trainable_for("runs/local")).get_results()
        print(grid.get_dataframe()[["config/trial/name", "step", "mini-math/accuracy"]])
    """
    from ray import tune

    from distill_ray.config import sweep_from_dict

    exp_dir = os.path.abspath(exp_dir)
    if sweep is None:
        sweep = sweep_from_dict(_read_json(os.path.join(exp_dir, "sweep.json")), os.path.join(exp_dir, "sweep.json"))
    trainable = tune.with_parameters(run_trial, sweep_data=sweep.model_dump(), exp_dir=exp_dir)
    resources = {k.lower() if k in ("CPU", "GPU") else k: v for k, v in sweep.trial_resources.items()}
    return tune.with_resources(trainable, resources)


def check_secrets(sweep: SweepConfig, file: str = "<sweep>") -> None:
    """Fail before anything starts when a teacher's API key variable is unset (the key itself is never read here)."""
    from distill_ray.config import ConfigError

    for name in sweep.grid.teachers:
        env = sweep.teachers[name].api_key_env
        if env and not os.environ.get(env):
            raise ConfigError(file, f"teachers.{name}.api_key_env",
                              f"environment variable {env} is not set (it must hold the provider's API key)")


def run_shared_stages(sweep: SweepConfig, exp_dir: str) -> dict:
    """Problems, traces and verification per (teacher, domain), and base scores per student."""
    import ray

    benchmarks = prepare_benchmarks(sweep, exp_dir)
    problems = {d: prepare_problems(sweep, exp_dir, d, benchmarks) for d in sweep.grid.domains}
    traces = {}
    for teacher, domain in itertools.product(sweep.grid.teachers, sweep.grid.domains):
        traces[(teacher, domain)] = generate_and_verify(sweep, exp_dir, teacher, sweep.teachers[teacher], domain,
                                                        problems[domain])
    base: dict[str, Any] = {}
    if sweep.evaluation.evaluate_base:
        remote = ray.remote(num_cpus=1)(evaluate_base)
        sweep_ref = ray.put(sweep)
        futures = {s: remote.remote(sweep_ref, exp_dir, s, benchmarks) for s in sweep.grid.students}
        base = {s: ray.get(f) for s, f in futures.items()}
        _log(f"base scores: { {s: {b['benchmark']: round(b['accuracy'], 3) for b in v} for s, v in base.items()} }")
    return {"benchmarks": benchmarks, "traces": traces, "base": base}


def run_sweep(sweep: SweepConfig, *, resume: bool = False, num_cpus: int | None = None) -> dict:
    """Run (or resume) the whole experiment and write its report; returns a summary with the report path."""
    import ray
    from ray import tune

    from distill_ray.report import write_report

    check_secrets(sweep)
    exp_dir = os.path.abspath(sweep.experiment_dir())
    sweep_file = os.path.join(exp_dir, "sweep.json")
    if os.path.exists(sweep_file) and not resume:
        raise FileExistsError(f"{exp_dir} already holds an experiment; pass --resume to continue it, "
                              f"or change `name`/`storage`")
    os.makedirs(exp_dir, exist_ok=True)
    _write_json(sweep_file, sweep.model_dump())
    started = time.time()
    if not ray.is_initialized():
        # An existing cluster only when RAY_ADDRESS names one (as `ray job submit` does); otherwise a fresh local
        # instance, never whatever cluster happens to run on this machine.
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or "local", num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False)
    server, sweep = _start_builtin_teachers(sweep)
    try:
        shared = run_shared_stages(sweep, exp_dir)
        trials = grid_trials(sweep)
        _log(f"{len(trials)} trials")
        trainable = trainable_for(exp_dir, sweep)
        tune_dir = os.path.join(exp_dir, "tune")
        if resume and tune.Tuner.can_restore(tune_dir):
            tuner = tune.Tuner.restore(tune_dir, trainable, resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable,
                param_space={"trial": tune.grid_search(trials)},
                tune_config=tune.TuneConfig(max_concurrent_trials=sweep.max_concurrent_trials),
                run_config=tune.RunConfig(
                    name="tune", storage_path=exp_dir,
                    failure_config=tune.FailureConfig(max_failures=sweep.training.max_failures),
                    callbacks=[_progress_callback(len(trials))],
                    verbose=0,
                ),
            )
        results = tuner.fit()
        errors = [str(r.error) for r in results if r.error]
        report = write_report(exp_dir)
    finally:
        if server is not None:
            server.stop()
    summary = {"experiment_dir": exp_dir, "trials": len(trials), "failed_trials": len(errors), "errors": errors,
               "report": report, "wall_s": round(time.time() - started, 1), "base": shared["base"]}
    _log(f"done in {summary['wall_s']} s: {len(trials) - len(errors)}/{len(trials)} trials finished; report {report}")
    return summary
