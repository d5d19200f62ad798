"""Where an experiment stands, read from its directory alone: `distill-ray status EXPERIMENT_DIR`.

    from distill_ray.status import read_status
    status = read_status("runs/local")      # a plain dict (JSON-ready); distill_ray.status_view prints it

It opens only files the stages leave in the experiment directory (distill_ray.experiment names them): markers
(done.json, generated.json, scores.json), the progress files the generate stage and training rewrite while they run
(records.GenerationProgress, records.TrainProgress), Ray Train's persisted checkpoints and results.jsonl. So it works
beside `ray job submit`, on a finished run and after a crash, and never talks to Ray.

What it shows: per stage done / running / waiting; per (teacher, domain) rows answered, failures, dollars against
`max_cost_usd`, rate and time left; per trial its step, the last checkpoint scored and its scores; per student's
evaluation pool the checkpoints persisted but not scored yet (its queue); an estimated end.

Not guaranteed: "running" means "has progress on disk and no marker": a crashed stage reads as running until the
sweep is resumed (`updated` says how old its figures are). Rates and times left assume the recent pace holds; the
estimated end assumes waiting trials take as long as the running ones and run `max_concurrent_trials` at a time.
While generation runs, `failures` counts every failed request so far, retried ones included (the permanent ones are
known only when the stage ends). The
per-teacher dollars of a finished stage are those of its last run (a resumed stage's earlier spending is in
`spent_before_usd`).
"""

from __future__ import annotations

import math
import os
import time
from typing import Any

from distill_ray import experiment as ex

DONE, RUNNING, WAITING = "done", "running", "waiting"


def _read_json_or_none(path: str) -> Any:
    try:
        return ex.read_json(path)
    except (FileNotFoundError, ValueError):  # not there yet, or caught between a write and its rename on NFS
        return None


def _teacher_row(exp_dir: str, sweep: dict, teacher: str, domain: str) -> dict[str, Any]:
    folder = ex.traces_dir(exp_dir, teacher, domain)
    generated = _read_json_or_none(os.path.join(folder, "generated.json"))
    progress = _read_json_or_none(ex.generation_progress_file(exp_dir, teacher, domain)) or {}
    verified = ex.is_done(folder)
    max_cost = sweep["teachers"][teacher].get("max_cost_usd")
    row: dict[str, Any] = {"teacher": teacher, "domain": domain, "max_cost_usd": max_cost}
    if generated is not None:
        row.update(generate=DONE, rows_total=generated.get("rows", 0), rows_done=generated.get("rows", 0),
                   failures=generated.get("failed", 0), permanent_failures=generated.get("permanent_failures", 0),
                   cost_usd=float(generated.get("cost_usd", 0.0)),
                   spent_before_usd=float(generated.get("spent_before_usd", 0.0)),
                   rate_rows_s=None, seconds_left=0.0, elapsed_s=float(generated.get("wall_s", 0.0)))
    elif progress:
        done, total, elapsed = progress["rows_done"], progress["rows_total"], max(1e-9, progress["elapsed_s"])
        rate = done / elapsed if done else None
        row.update(generate=RUNNING, rows_total=total, rows_done=done,
                   failures=int(sum(progress.get("errors", {}).values())), permanent_failures=None,
                   cost_usd=float(progress["cost_usd"]), spent_before_usd=float(progress["spent_before_usd"]),
                   rate_rows_s=rate, seconds_left=(total - done) / rate if rate else None, elapsed_s=elapsed,
                   updated=progress["updated"])
    else:
        row.update(generate=WAITING, rows_total=None, rows_done=0, failures=0, permanent_failures=None,
                   cost_usd=0.0, spent_before_usd=0.0, rate_rows_s=None, seconds_left=None, elapsed_s=0.0)
    row["verify"] = DONE if verified else (RUNNING if generated is not None else WAITING)
    return row


def _persisted_steps(exp_dir: str, trial: str) -> list[int]:
    from distill_ray.train.ray_train import persisted_checkpoints

    return [int(os.path.basename(f).split("-")[-1]) for f in persisted_checkpoints(ex.train_dir(exp_dir, trial))]


def _accuracies(scores: list[dict]) -> dict[str, float]:
    return {s["benchmark"]: float(s["accuracy"]) for s in scores}


def _trial_row(exp_dir: str, trial: dict[str, Any], steps: int) -> dict[str, Any]:
    name = trial["name"]
    folder = ex.trial_dir(exp_dir, name)
    progress = _read_json_or_none(ex.train_progress_file(exp_dir, name)) or {}
    persisted, scored = _persisted_steps(exp_dir, name), ex.scored_steps(exp_dir, name)
    step = max([progress.get("step", 0), *persisted, 0])
    last_scored = scored[-1] if scored else None
    row: dict[str, Any] = {
        "trial": name, "student": trial["student"], "step": step, "steps": steps,
        "last_scored_step": last_scored,
        "scores": _accuracies(ex.read_scores(ex.eval_dir(exp_dir, name, last_scored))) if scored else {},
        "queued_steps": [s for s in persisted if s not in scored and s <= steps],
        "rate_steps_s": None, "seconds_left": None,
    }
    if ex.is_done(folder):
        row["state"] = DONE
        row["step"], row["seconds_left"] = steps, 0.0
    elif progress or persisted:
        row["state"] = RUNNING
        trained = progress.get("step", 0) - progress.get("started_step", 0)
        elapsed = progress.get("updated", 0) - progress.get("started", 0)
        if trained > 0 and elapsed > 0:
            row["rate_steps_s"] = trained / elapsed
            row["seconds_left"] = (steps - progress["step"]) / row["rate_steps_s"]
        if progress:
            row["updated"] = progress["updated"]
    else:
        row["state"] = WAITING
    return row


def _estimated_end(trials: list[dict], concurrency: int, now: float) -> float | None:
    """now + the longest time left of the running trials + the waiting trials' share of the concurrency, each as
    long as a running trial's whole run at its pace. None while no trial has a pace yet."""
    paces = [t["steps"] / t["rate_steps_s"] for t in trials if t["rate_steps_s"]]
    running_left = [t["seconds_left"] for t in trials if t["state"] == RUNNING and t["seconds_left"] is not None]
    waiting = sum(1 for t in trials if t["state"] == WAITING)
    if not any(t["state"] in (RUNNING, WAITING) for t in trials):
        return now
    if not paces:
        return None
    per_trial = sum(paces) / len(paces)
    return now + max(running_left or [0.0]) + math.ceil(waiting / max(1, concurrency)) * per_trial


def read_status(exp_dir: str, now: float | None = None) -> dict[str, Any]:
    """The experiment's state as a JSON-ready dict (see the module docstring). FileNotFoundError when `exp_dir` holds
    no experiment (no sweep.json)."""
    from distill_ray.config import sweep_from_dict
    from distill_ray.sweep import grid_trials

    now = time.time() if now is None else now
    path = ex.sweep_file(exp_dir)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{exp_dir}: no experiment here ({os.path.basename(path)} is missing)")
    data = ex.read_json(path)
    sweep = sweep_from_dict(data, path)
    teachers = [_teacher_row(exp_dir, data, t, d) for t in sweep.grid.teachers for d in sweep.grid.domains]
    trials = [_trial_row(exp_dir, t, sweep.training.steps) for t in grid_trials(sweep)]
    base = {s: (_accuracies(ex.read_scores(ex.base_dir(exp_dir, s))) if ex.is_scored(ex.base_dir(exp_dir, s))
                else None) for s in sweep.grid.students}
    pools = {s: {"queued": sum(len(t["queued_steps"]) for t in trials if t["student"] == s)
                 + (1 if sweep.evaluation.evaluate_base and base[s] is None else 0)} for s in sweep.grid.students}
    problems = [ex.is_done(ex.problems_dir(exp_dir, d)) for d in sweep.grid.domains]
    finished = _read_json_or_none(ex.sweep_done_file(exp_dir))

    def stage(done: bool, started: bool) -> str:
        return DONE if done else (RUNNING if started else WAITING)

    generated = [t["generate"] == DONE for t in teachers]
    verified = [t["verify"] == DONE for t in teachers]
    trial_states = [t["state"] for t in trials]
    stages = {
        "benchmarks": stage(all(os.path.exists(ex.benchmark_file(exp_dir, b.name))
                                for b in sweep.evaluation.benchmarks), os.path.isdir(os.path.join(exp_dir,
                                                                                                  "benchmarks"))),
        "problems": stage(all(problems), any(problems)),
        "generate": stage(all(generated), any(t["generate"] != WAITING for t in teachers)),
        "verify": stage(all(verified), any(verified)),
        "train+evaluate": stage(all(s == DONE for s in trial_states),
                                any(s != WAITING for s in trial_states)),
        "report": stage(finished is not None and os.path.exists(ex.report_file(exp_dir)), False),
    }
    end = (finished or {}).get("finished") if finished else _estimated_end(
        trials, sweep.max_concurrent_trials or len(trials), now)
    return {"experiment_dir": os.path.abspath(exp_dir), "name": sweep.name, "now": now, "stages": stages,
            "teachers": teachers, "trials": trials, "base": base, "pools": pools, "estimated_end": end,
            "finished": finished is not None, "profile": (finished or {}).get("profile")}
