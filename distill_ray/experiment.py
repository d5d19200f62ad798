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
    report.md, results.csv, results.json, curves-*.png, replicates-*.png    the report (distill_ray.report)

A folder's `done.json` (a `scores.json` for an evaluation) is written last, atomically: a stage whose marker exists
is finished and never redone; one without it is redone from its own resumable state.

Not guaranteed: atomicity beyond one file on a POSIX filesystem (os.replace); markers on a filesystem that does not
order a rename after the writes before it (some network filesystems need the fsync done here).
"""

from __future__ import annotations

import glob
import os
from typing import Any

from distill_ray.files import (  # noqa: F401  (re-exported: the stages read and write through `ex.`)
    InputError,
    iter_jsonl,
    read_json,
    read_jsonl,
    write_json,
    write_jsonl,
    write_text,
    write_texts,
)

DONE = "done.json"
SCORES = "scores.json"
RESPONSES = "responses.jsonl"
BASE_RECHECK = "base_recheck.json"  # base/<student>/: the end-of-sweep re-scoring of the base model (evaluate.pool)


# ------------------------------------------------------------------------------------------------------------ paths

def sweep_file(exp_dir: str) -> str:
    return os.path.join(exp_dir, "sweep.json")


def benchmark_file(exp_dir: str, benchmark: str) -> str:
    return os.path.join(exp_dir, "benchmarks", f"{benchmark}.jsonl")


def problems_dir(exp_dir: str, domain: str) -> str:
    return os.path.join(exp_dir, "problems", domain)


def traces_dir(exp_dir: str, teacher: str, domain: str) -> str:
    return os.path.join(exp_dir, "traces", teacher, domain)


def problems_file(exp_dir: str, domain: str) -> str:
    return os.path.join(problems_dir(exp_dir, domain), "problems.jsonl")


def contamination_file(exp_dir: str, domain: str) -> str:
    return os.path.join(problems_dir(exp_dir, domain), "contamination.json")


def contamination_files(exp_dir: str) -> dict[str, str]:
    """{domain: its contamination.json} for every domain whose problems stage wrote one, in domain order."""
    paths = sorted(glob.glob(os.path.join(exp_dir, "problems", "*", "contamination.json")))
    return {os.path.basename(os.path.dirname(p)): p for p in paths}


def raw_traces_dir(exp_dir: str, teacher: str, domain: str) -> str:
    return os.path.join(traces_dir(exp_dir, teacher, domain), "raw")


def generated_file(exp_dir: str, teacher: str, domain: str) -> str:
    """The generate stage's marker + summary."""
    return os.path.join(traces_dir(exp_dir, teacher, domain), "generated.json")


def verified_file(exp_dir: str, teacher: str, domain: str) -> str:
    return os.path.join(traces_dir(exp_dir, teacher, domain), "verified.jsonl")


def cache_dir(exp_dir: str, kind: str) -> str:
    return os.path.join(exp_dir, "cache", kind)


def base_dir(exp_dir: str, student: str) -> str:
    return os.path.join(exp_dir, "base", student)


def trial_dir(exp_dir: str, trial: str) -> str:
    return os.path.join(exp_dir, "trials", trial)


def train_dir(exp_dir: str, trial: str) -> str:
    return os.path.join(trial_dir(exp_dir, trial), "train")


def eval_dir(exp_dir: str, trial: str, step: int) -> str:
    return eval_dir_of_trial_folder(trial_dir(exp_dir, trial), step)


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


def report_data_file(exp_dir: str, extension: str) -> str:
    """results.csv / results.json beside the report."""
    return os.path.join(exp_dir, f"results.{extension}")


def responses_file(evaluation_dir: str) -> str:
    """An evaluation folder's (base/<student>/ or eval/step-N/) responses."""
    return os.path.join(evaluation_dir, RESPONSES)


def scores_file(evaluation_dir: str) -> str:
    return os.path.join(evaluation_dir, SCORES)


def base_scores_files(exp_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(exp_dir, "base", "*", SCORES)))


def base_recheck_file(base_folder: str) -> str:
    """base/<student>/base_recheck.json: the end-of-sweep re-scoring of the base model on a seeded subset."""
    return os.path.join(base_folder, BASE_RECHECK)


def base_recheck_files(exp_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(exp_dir, "base", "*", BASE_RECHECK)))


def evaluation_dirs(exp_dir: str) -> list[str]:
    """Every stored evaluation with responses: the base models', then each trial's checkpoints."""
    found = sorted(glob.glob(os.path.join(exp_dir, "base", "*", RESPONSES)))
    found += sorted(glob.glob(os.path.join(exp_dir, "trials", "*", "eval", "step-*", RESPONSES)))
    return [os.path.dirname(p) for p in found]


def results_files(exp_dir: str) -> list[str]:
    """Every trial's results.jsonl, in trial-name order."""
    return sorted(glob.glob(os.path.join(exp_dir, "trials", "*", "results.jsonl")))


def trial_of_results(results: str) -> str:
    """The trial folder a results_files() path belongs to."""
    return os.path.dirname(results)


def eval_dir_of_trial_folder(trial_folder: str, step: int) -> str:
    return os.path.join(trial_folder, "eval", f"step-{step:06d}")


def scored_steps(exp_dir: str, trial: str) -> list[int]:
    """The checkpoint steps of `trial` whose evaluation has finished (scores written), in step order."""
    folders = glob.glob(os.path.join(trial_dir(exp_dir, trial), "eval", "step-*"))
    return sorted(int(os.path.basename(f).split("-")[-1]) for f in folders if is_scored(f))


def traces_done_files(exp_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(exp_dir, "traces", "*", "*", DONE)))


def problems_done_files(exp_dir: str) -> list[str]:
    return sorted(glob.glob(os.path.join(exp_dir, "problems", "*", DONE)))


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


# ------------------------------------------------------------------------------------------------- reads and writes
# One reader and one atomic writer for the whole package, kept on the ground floor (distill_ray/files.py) so that
# libraries use them without importing this layout; re-exported here for the stages.
