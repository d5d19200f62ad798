"""The experiment directory: where every stage of a sweep keeps its outputs, and how they are written.

    from distill_ray import experiment as ex
    ex.write_json(ex.sweep_file(exp_dir), sweep.model_dump())
    if not ex.is_done(ex.problems_dir(exp_dir, "math")): ...

Layout of `storage/name` (every path below has one function here; no other module joins these names):

    sweep.json                              the validated sweep the experiment runs (resume and Tune restore read it)
    benchmarks/<benchmark>.jsonl            the evaluation items, loaded once, so trials and the report see the same
    problems/<domain>/problems.jsonl        training problems after dedup/decontamination; contamination.json
    problems/<domain>/done.json             marker + summary (records.ProblemsDone)
    traces/<teacher>/<domain>/raw/          teacher responses (Parquet shards)
    traces/<teacher>/<domain>/generated.json    generate-stage marker + summary
    traces/<teacher>/<domain>/verified.jsonl    verdicts; done.json: verify-stage marker (records.TracesDone)
    traces/<teacher>/<domain>/progress.json     the generate stage while it runs (records.GenerationProgress)
    cache/problems/, cache/teacher/         content-keyed caches (paid teacher responses survive any restart)
    base/<student>/scores.json              base-model scores (+ responses.jsonl, worker.json)
    trials/<trial>/train/ray_train/step-N/  Ray Train checkpoints (adapter/, state/)
    trials/<trial>/train/progress.json      training's step while it runs (records.TrainProgress)
    trials/<trial>/eval/step-N/scores.json  one checkpoint's scores (+ responses.jsonl, worker.json)
    trials/<trial>/results.jsonl            one records.TrialRow per checkpoint; done.json (records.TrialDone)
    tune/                                   Ray Tune's experiment state (ResultGrid)
    tracking/                               experiment tracking kept in the experiment (W&B offline runs)
    done.json                               the sweep's summary and its time profile (records.SweepDone)
    report.md, results.csv, results.json, curves-*.png    the report (distill_ray.report)

A folder's `done.json` (a `scores.json` for an evaluation) is written last, atomically: a stage whose marker exists
is finished and never redone; one without it is redone from its own resumable state.

Not guaranteed: atomicity beyond one file on a POSIX filesystem (os.replace); markers on a filesystem that does not
order a rename after the writes before it (some network filesystems need the fsync done here).
"""

from __future__ import annotations

import json
import os
from typing import Any

DONE = "done.json"
SCORES = "scores.json"


# ------------------------------------------------------------------------------------------------------------ paths

def sweep_file(exp_dir: str) -> str:
    return os.path.join(exp_dir, "sweep.json")


def benchmark_file(exp_dir: str, benchmark: str) -> str:
    return os.path.join(exp_dir, "benchmarks", f"{benchmark}.jsonl")


def problems_dir(exp_dir: str, domain: str) -> str:
    return os.path.join(exp_dir, "problems", domain)


def traces_dir(exp_dir: str, teacher: str, domain: str) -> str:
    return os.path.join(exp_dir, "traces", teacher, domain)


def cache_dir(exp_dir: str, kind: str) -> str:
    return os.path.join(exp_dir, "cache", kind)


def base_dir(exp_dir: str, student: str) -> str:
    return os.path.join(exp_dir, "base", student)


def trial_dir(exp_dir: str, trial: str) -> str:
    return os.path.join(exp_dir, "trials", trial)


def train_dir(exp_dir: str, trial: str) -> str:
    return os.path.join(trial_dir(exp_dir, trial), "train")


def eval_dir(exp_dir: str, trial: str, step: int) -> str:
    return os.path.join(trial_dir(exp_dir, trial), "eval", f"step-{step:06d}")


def results_file(exp_dir: str, trial: str) -> str:
    return os.path.join(trial_dir(exp_dir, trial), "results.jsonl")


def tune_dir(exp_dir: str) -> str:
    return os.path.join(exp_dir, "tune")


def report_file(exp_dir: str) -> str:
    return os.path.join(exp_dir, "report.md")


def generation_progress_file(exp_dir: str, teacher: str, domain: str) -> str:
    return os.path.join(traces_dir(exp_dir, teacher, domain), "progress.json")


def train_progress_file(exp_dir: str, trial: str) -> str:
    return os.path.join(train_dir(exp_dir, trial), "progress.json")


def tracking_dir(exp_dir: str) -> str:
    return os.path.join(exp_dir, "tracking")


def sweep_done_file(exp_dir: str) -> str:
    return os.path.join(exp_dir, DONE)


# ---------------------------------------------------------------------------------------------------------- markers

def is_done(folder: str) -> bool:
    return os.path.exists(os.path.join(folder, DONE))


def mark_done(folder: str, summary: Any) -> None:
    write_json(os.path.join(folder, DONE), summary)


def read_done(folder: str) -> Any:
    return read_json(os.path.join(folder, DONE))


def is_scored(output_dir: str) -> bool:
    return os.path.exists(os.path.join(output_dir, SCORES))


def read_scores(output_dir: str) -> list[dict]:
    return read_json(os.path.join(output_dir, SCORES))


# ----------------------------------------------------------------------------------------------------------- writes

def write_text(path: str, text: str) -> None:
    """Write `text` so that a reader sees the old file or the new one, never half of one (even after a crash)."""
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


def write_json(path: str, data: Any) -> None:
    write_text(path, json.dumps(data, indent=1, default=str))


def write_jsonl(path: str, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(row) + "\n" for row in rows))


def read_json(path: str) -> Any:
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
