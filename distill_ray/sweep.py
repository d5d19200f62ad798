"""The whole study as one Ray Tune experiment: problems → traces → verified traces → trials (train + evaluate) → report.

    from distill_ray.config import load_sweep
    from distill_ray.sweep import run_sweep, load_results
    run_sweep(load_sweep("sweeps/local.yaml"))          # or: distill-ray sweep sweeps/local.yaml
    grid = load_results("runs/local")                    # Tune's ResultGrid: one result per checkpoint

Stages shared by trials (distill_ray.stages.run) run once, before Tune starts, and leave their outputs in the experiment
directory (distill_ray.experiment documents its layout). Then, per student, an evaluation pool starts
(distill_ray.evaluate.pool: actors with one warm engine each) and scores the base model first. Each Tune trial trains
one (teacher, student, domain[, extra axes]) adapter with Ray Train; a Ray Train callback puts every persisted
checkpoint on a queue, the trial hands it to its student's pool and keeps training, and reports each checkpoint's
row (records.TrialRow) to Tune as soon as it and every earlier one are scored. The rows go to
`trials/<trial>/results.jsonl`, which the report reads.

Resuming: a finished stage or trial (done.json) is never redone, a scored checkpoint (scores.json) never rescored,
paid teacher responses live in the teacher cache; training resumes from its last checkpoint.

Not guaranteed: exactly-once training steps across a crash of the *driver* (trials resume from their last checkpoint,
so steps after it are recomputed, not double-counted); identical numbers across different hardware; a pool's
throughput beyond its actors (requests wait for a free actor, first come first served).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from typing import Any

from distill_ray import experiment as ex
from distill_ray.config import StudentConfig, SweepConfig, trial_config
from distill_ray.evaluate.pool import Evaluator
from distill_ray.records import TrialDone, TrialRow
from distill_ray.stages.problems import read_benchmarks
from distill_ray.stages.run import check_secrets, log, run_shared_stages, start_builtin_teachers
from distill_ray.stages.verify import training_examples

__all__ = ["check_secrets", "grid_trials", "load_results", "run_sweep", "run_trial", "trainable_for", "trial_name"]

# ------------------------------------------------------------------------------------------------------------ grid


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


# ----------------------------------------------------------------------------------------------------------- trial


def _scores_row(scores: list[dict]) -> dict[str, Any]:
    from distill_ray.stages.rescore import score_columns  # one definition, shared with `distill-ray rescore`

    return score_columns(scores)


def trial_row(config: dict[str, Any], ckpt: dict, scores: list[dict], *, examples: int) -> TrialRow:
    """The results.jsonl row of one checkpoint (records.TrialRow plus the per-benchmark and extra-axis keys)."""
    return {"trial": config["name"], "teacher": config["teacher"], "student": config["student"],
            "domain": config["domain"], **{f"extra/{k}": v for k, v in config.get("extra", {}).items()},
            "step": ckpt["step"], "samples": ckpt["samples"], "train_loss": ckpt["train_loss"],
            "examples": examples, "truncated_examples": ckpt["truncated_examples"], **_scores_row(scores)}


class CheckpointListener:
    """Hears of each checkpoint as soon as Ray Train has persisted it: a Ray Train callback (run in the Train
    controller) puts its folder on a queue that the trial drains while training goes on."""

    def __init__(self) -> None:
        import ray
        from ray.util.queue import Queue
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=False)
        self.queue = Queue(actor_options={"num_cpus": 0, "scheduling_strategy": here})

    def callback(self) -> Any:
        from ray.train import UserCallback

        class PutCheckpoint(UserCallback):
            def __init__(self, queue: Any) -> None:
                self.queue = queue

            def after_report(self, run_context: Any, metrics: list[dict], checkpoint: Any) -> None:
                if checkpoint is not None:
                    self.queue.put(checkpoint.path)

        return PutCheckpoint(self.queue)

    def drain(self, timeout: float) -> list[str]:
        from ray.util.queue import Empty

        try:
            items = [self.queue.get(timeout=timeout)]
        except Empty:
            return []
        while not self.queue.empty():
            items.append(self.queue.get_nowait())
        return items

    def close(self) -> None:
        self.queue.shutdown()


def run_trial(config: dict[str, Any], *, sweep_data: dict, exp_dir: str, use_ray_train: bool = True,
              pools: dict[str, Any] | None = None) -> dict:
    """One trial: train the adapter on its (teacher, domain) traces; each checkpoint, once Ray Train has persisted
    it, goes to the student's evaluation pool (`pools[student]`; without one, an engine in this process) while
    training continues, and its row is reported to Tune as soon as it and every earlier checkpoint are scored.

    Reads only its arguments. Resumes from the trial folder: a finished trial reports its saved rows again; training
    resumes from its last checkpoint; evaluated checkpoints (scores.json) are not evaluated again.
    """
    from distill_ray.config import sweep_from_dict
    from distill_ray.train import train_student
    from distill_ray.train.core import checkpoint_info
    from distill_ray.train.ray_train import persisted_checkpoints

    config = config.get("trial", config)  # Tune passes {"trial": {...}} from the grid's param_space
    sweep = trial_config(sweep_from_dict(sweep_data, "<trial>"), config.get("extra", {}))
    name = config["name"]
    folder = ex.trial_dir(exp_dir, name)
    if ex.is_done(folder):
        rows = ex.read_jsonl(ex.results_file(exp_dir, name))
        for row in rows:
            _report_to_tune(row)
        return rows[-1] if rows else {}
    teacher = sweep.teachers[config["teacher"]]
    student: StudentConfig = sweep.students[config["student"]]
    from distill_ray.stages.generate import check_trainable

    check_trainable(exp_dir, config["teacher"], config["domain"], teacher.max_failure_share)
    examples = training_examples(exp_dir, config["teacher"], config["domain"], teacher.truncation_policy)
    if not examples:
        raise RuntimeError(f"trial {name}: no verified training examples for {config['teacher']}/{config['domain']}")
    evaluator = Evaluator(config["student"], sweep.students[config["student"]], sweep.evaluation,
                          read_benchmarks(sweep, exp_dir), allow_network_risk=sweep.allow_network_risk,
                          pool=(pools or {}).get(config["student"]),
                          base_responses=ex.responses_file(ex.base_dir(exp_dir, config["student"])))
    listener = CheckpointListener() if use_ray_train else None
    outcome: dict[str, Any] = {}

    def train() -> None:
        try:
            outcome["train"] = train_student(examples, student, sweep.training, ex.train_dir(exp_dir, name),
                                             use_ray=use_ray_train, resume=True,
                                             callbacks=[listener.callback()] if listener else None)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the trial's own thread below
            outcome["error"] = exc

    pending: dict[int, tuple[dict, Any]] = {}  # step -> (checkpoint, future of its scores)
    rows: list[TrialRow] = []

    def submit(step_dir: str) -> None:
        ckpt = checkpoint_info(step_dir)
        if ckpt["step"] not in pending and ckpt["step"] <= sweep.training.steps:
            pending[ckpt["step"]] = (ckpt, evaluator.submit(ckpt, ex.eval_dir(exp_dir, name, ckpt["step"])))

    def report_ready() -> None:
        for step in sorted(pending):
            if rows and step <= rows[-1]["step"]:
                continue
            ckpt, future = pending[step]
            if not future.done():
                return
            row = trial_row(config, ckpt, future.result(), examples=len(examples))
            rows.append(row)
            _report_to_tune(row)

    if use_ray_train:
        for step_dir in persisted_checkpoints(ex.train_dir(exp_dir, name)):
            submit(step_dir)  # a resumed trial's checkpoints from before the restart
    thread = threading.Thread(target=train, name=f"train-{name}", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            for step_dir in listener.drain(timeout=0.5) if listener else ():
                submit(step_dir)
            if listener is None:
                thread.join(0.5)
            report_ready()
        if "error" in outcome:
            raise outcome["error"]
        summary = outcome["train"]
        for ckpt in summary["checkpoints"]:
            submit(os.path.dirname(ckpt["path"]))  # any the listener did not see (e.g. a run finished before)
        while len(rows) < len(pending):
            for _, future in pending.values():
                future.exception()  # wait for the rest; an evaluation's error is raised by report_ready
            report_ready()
    finally:
        if listener:
            listener.close()
        evaluator.close()
    ex.write_jsonl(ex.results_file(exp_dir, name), rows)
    ex.mark_done(folder, TrialDone(rows=len(rows), train={k: v for k, v in summary.items() if k != "checkpoints"}))
    return rows[-1] if rows else {}


def _report_to_tune(row: dict) -> None:
    from ray import tune

    try:
        tune.report({k: v for k, v in row.items() if isinstance(v, int | float)})
    except RuntimeError:
        pass  # called outside a Tune session (stage run alone): nothing to report to


# -------------------------------------------------------------------------------------------------------------- run


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
            log(f"trial {name} {verb}: {len(self.done)}/{total} done, {running} running, "
                 f"{len(self.failed)} failed")

        def on_trial_complete(self, iteration, trials, trial, **info):
            self.done.add(trial.trial_id)
            self._line(trial, "finished", trials)

        def on_trial_error(self, iteration, trials, trial, **info):
            self.failed.add(trial.trial_id)
            self._line(trial, f"FAILED ({trial.error_file})", trials)

    return Progress()


def tune_trial(config: dict[str, Any], **kwargs: Any) -> None:
    """run_trial as a Tune function trainable. It returns nothing: Tune would record a returned dict as one more
    result, and every checkpoint's row has already been reported."""
    run_trial(config, **kwargs)


def trainable_for(exp_dir: str, sweep: SweepConfig | None = None, pools: dict[str, Any] | None = None) -> Any:
    """The Tune trainable of an experiment (what `Tuner.restore` needs; `load_results` is the usual way in), its
    trials evaluating on `pools` (student -> EvalPool handle) when given."""
    from ray import tune

    from distill_ray.config import sweep_from_dict

    exp_dir = os.path.abspath(exp_dir)
    if sweep is None:
        sweep = sweep_from_dict(ex.read_json(ex.sweep_file(exp_dir)), ex.sweep_file(exp_dir))
    trainable = tune.with_parameters(tune_trial, sweep_data=sweep.model_dump(), exp_dir=exp_dir, pools=pools)
    resources = {k.lower() if k in ("CPU", "GPU") else k: v for k, v in sweep.trial_resources.items()}
    return tune.with_resources(trainable, resources)


def load_results(exp_dir: str) -> Any:
    """The Tune ResultGrid of an experiment directory (relative or absolute; running or finished):

        from distill_ray.sweep import load_results
        grid = load_results("runs/local")
        print(grid.get_dataframe()[["config/trial/name", "step", "mini-math/accuracy"]])   # last report per trial
        for result in grid:                                                                  # every checkpoint
            print(result.config["trial"]["name"], result.metrics_dataframe[["step", "mini-math/accuracy"]])
    """
    from ray import tune

    exp_dir = os.path.abspath(exp_dir)  # pyarrow reads a relative path as a URI with an empty scheme
    return tune.Tuner.restore(ex.tune_dir(exp_dir), trainable=trainable_for(exp_dir)).get_results()


def start_pools(sweep: SweepConfig, exp_dir: str, benchmarks: dict) -> tuple[dict[str, Any], dict[str, Any]]:
    """One evaluation pool per student of the grid, and its base-model evaluation queued first (when asked for)."""
    from distill_ray.evaluate.pool import start_pool

    pools = {s: start_pool(s, sweep.students[s], sweep.evaluation, benchmarks,
                           allow_network_risk=sweep.allow_network_risk) for s in sweep.grid.students}
    base_refs = {}
    if sweep.evaluation.evaluate_base:
        base_refs = {s: pool.evaluate.remote(None, 0, 0, ex.base_dir(exp_dir, s)) for s, pool in pools.items()}
    return pools, base_refs


def run_sweep(sweep: SweepConfig, *, resume: bool = False, num_cpus: int | None = None) -> dict:
    """Run (or resume) the whole experiment and write its report; returns a summary with the report path."""
    import ray
    from ray import tune

    from distill_ray.report import write_report

    check_secrets(sweep)
    exp_dir = os.path.abspath(sweep.experiment_dir())
    sweep_file = ex.sweep_file(exp_dir)
    if os.path.exists(sweep_file) and not resume:
        raise FileExistsError(f"{exp_dir} already holds an experiment; pass --resume to continue it, "
                              f"or change `name`/`storage`")
    os.makedirs(exp_dir, exist_ok=True)
    ex.write_json(sweep_file, sweep.model_dump())
    started = time.time()
    if not ray.is_initialized():
        # An existing cluster only when RAY_ADDRESS names one (as `ray job submit` does); otherwise a fresh local
        # instance, never whatever cluster happens to run on this machine.
        address = os.environ.get("RAY_ADDRESS")
        ray.init(address=address or "local", num_cpus=None if address else num_cpus, include_dashboard=False,
                 log_to_driver=False)
    server, sweep = start_builtin_teachers(sweep)
    pools: dict[str, Any] = {}
    try:
        shared = run_shared_stages(sweep, exp_dir)
        pools, base_refs = start_pools(sweep, exp_dir, shared["benchmarks"])
        trials = grid_trials(sweep)
        log(f"{len(trials)} trials; evaluation pools: "
            f"{ {s: sweep.students[s].evaluation.actors for s in pools} } actors per student")
        trainable = trainable_for(exp_dir, sweep, pools)
        tune_dir = ex.tune_dir(exp_dir)
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
        base = {s: ray.get(ref) for s, ref in base_refs.items()}
        log(f"base scores: { {s: {b['benchmark']: round(b['accuracy'], 3) for b in v} for s, v in base.items()} }")
        pool_stats = {s: ray.get(pool.stats.remote()) for s, pool in pools.items()}
        report = write_report(exp_dir)
    finally:
        for pool in pools.values():
            ray.kill(pool)  # its workers go with it (the pool owns them)
        if server is not None:
            server.stop()
    summary = {"experiment_dir": exp_dir, "trials": len(trials), "failed_trials": len(errors), "errors": errors,
               "report": report, "wall_s": round(time.time() - started, 1), "base": base,
               "evaluation_pools": pool_stats}
    log(f"done in {summary['wall_s']} s: {len(trials) - len(errors)}/{len(trials)} trials finished; report {report}")
    return summary
