"""Rescore: re-judge every stored response of an experiment with today's judges, without generating anything.

    distill-ray rescore runs/local/seed            # or: rescore_experiment("runs/local/seed") -> summary dict

Reads the experiment's benchmark items (`benchmarks/<name>.jsonl`, written when the sweep started) and every stored
evaluation: `base/<student>/` and `trials/<trial>/eval/step-*/`, each a `responses.jsonl` (records.EvalItem rows; rows
from before finish reasons existed keep None there) beside its `scores.json`. Each response is judged again by its
benchmark's judge (the registry's: MATH-500's last-box grader, MBPP+'s base and plus inputs, ...), then it rewrites
each `responses.jsonl` (verdict, reason, extracted, base_status, plus_status), each `scores.json`, the score columns of
each trial's `results.jsonl` (`score_columns`, matched by step), and finally the report (`report.write_report`).

Atomic in the way that matters: everything is judged and written to temporary files beside their targets first; only
then are the files replaced (`os.replace`, one by one). An interruption before that point (a judge error, a crash, a
full disk) leaves every old file intact and removes the temporary ones; the replacement phase renames prepared files
only, and running rescore again completes it (rescoring is idempotent).

Bad input raises `files.InputError` (the CLI exits 2) naming the file, the line and the field, before anything is
written: a responses row without `benchmark`, `problem_id` or `response`, an item missing from its benchmark file, a
missing benchmark file.

Not guaranteed: timing-dependent verdicts (an MBPP+ per-input time limit) are re-measured on this machine.
"""

from __future__ import annotations

import json
import os
from typing import Any

from distill_ray import experiment as ex
from distill_ray.files import InputError
from distill_ray.records import BenchmarkScore, EvalItem

REQUIRED_FIELDS = ("benchmark", "problem_id", "response")


def score_columns(scores: list[BenchmarkScore]) -> dict[str, Any]:
    """The per-benchmark columns of a trial's results.jsonl row (and the Tune metrics) for a checkpoint's scores."""
    row: dict[str, Any] = {}
    for s in scores:
        b = s["benchmark"]
        row.update({f"{b}/accuracy": s["accuracy"], f"{b}/ci95_low": s["ci95_low"], f"{b}/ci95_high": s["ci95_high"],
                    f"{b}/n": s["n"], f"{b}/format_failure_rate": s["format_failures"] / s["n"] if s["n"] else 0.0,
                    f"{b}/length_capped": int(s.get("length_capped") or 0)})  # responses cut at max_new_tokens
    return row


def rescore_experiment(exp_dir: str, *, allow_network_risk: bool = False, write_report: bool = True) -> dict[str, Any]:
    """Re-judge and rewrite an experiment's scores (see the module docstring); returns a summary."""
    from distill_ray.evaluate import eval_item, score_responses, summarise
    from distill_ray.evaluate.backends import Generation

    exp_dir = os.path.abspath(exp_dir)
    if not os.path.isdir(exp_dir):
        raise InputError(exp_dir, "no such experiment directory")
    dirs = ex.evaluation_dirs(exp_dir)
    stored: dict[str, list[dict[str, Any]]] = {}
    old_scores: dict[str, list[dict[str, Any]]] = {}
    for folder in dirs:
        stored[folder] = ex.read_jsonl(ex.responses_file(folder), REQUIRED_FIELDS)
        scores_path = ex.scores_file(folder)
        try:
            old_scores[folder] = ex.read_json(scores_path)
        except OSError as exc:
            raise InputError(scores_path, f"cannot read scores ({exc})") from None

    # every response of a benchmark, across all evaluations, judged in one call (MBPP+ ground truth computed once)
    problems: dict[str, dict[str, dict[str, Any]]] = {}
    jobs: dict[str, list[tuple[str, int]]] = {}
    for folder, rows in stored.items():
        for lineno, row in enumerate(rows, 1):
            name = row["benchmark"]
            if name not in problems:
                path = ex.benchmark_file(exp_dir, name)
                if not os.path.exists(path):
                    raise InputError(ex.responses_file(folder), f"{name!r} has no stored items ({path} is missing)",
                                     lineno, "benchmark")
                problems[name] = {p["id"]: p for p in ex.read_jsonl(path, ("id", "domain", "prompt", "answer",
                                                                            "tests"))}
            if row["problem_id"] not in problems[name]:
                raise InputError(ex.responses_file(folder), f"{row['problem_id']!r} is not an item of {name}",
                                 lineno, "problem_id")
            jobs.setdefault(name, []).append((folder, lineno - 1))
    judged: dict[tuple[str, int], dict[str, Any]] = {}
    for name, where in jobs.items():
        items = score_responses([problems[name][stored[f][i]["problem_id"]] for f, i in where],
                                [stored[f][i]["response"] for f, i in where],
                                allow_network_risk=allow_network_risk, benchmark=name)
        judged.update(zip(where, items))

    outputs: dict[str, str] = {}  # target path -> new text
    changed = 0
    new_scores: dict[str, list[BenchmarkScore]] = {}
    for folder, rows in stored.items():
        new_rows: list[EvalItem] = []
        for i, row in enumerate(rows):
            generation = Generation(row["response"], row.get("finish_reason"), row.get("generated_tokens"))
            new = eval_item(row["benchmark"], row["problem_id"], generation, judged[(folder, i)])
            changed += new["verdict"] != row.get("verdict")
            new_rows.append(new)
        scores = []
        for old in old_scores[folder]:
            items = [r for r in new_rows if r["benchmark"] == old["benchmark"]]
            score = summarise(old["benchmark"], items, step=old["step"], samples=old["samples"])
            if "environment" in old:  # re-judging keeps the answers, so the engine that wrote them stays on record
                score["environment"] = old["environment"]
            scores.append(score)
        new_scores[folder] = scores
        outputs[ex.responses_file(folder)] = "".join(json.dumps(r) + "\n" for r in new_rows)
        outputs[ex.scores_file(folder)] = json.dumps(scores, indent=1)
    for results in ex.results_files(exp_dir):
        trial = ex.trial_of_results(results)
        rows = []
        for lineno, row in ex.iter_jsonl(results, ("step",)):
            folder = ex.eval_dir_of_trial_folder(trial, int(row["step"]))
            if folder not in new_scores:
                raise InputError(results, f"no stored evaluation at {folder}", lineno, "step")
            rows.append(row)
            row.update(score_columns(new_scores[folder]))
        outputs[results] = "".join(json.dumps(r) + "\n" for r in rows)

    ex.write_texts(outputs)
    summary: dict[str, Any] = {"experiment_dir": exp_dir, "evaluations": len(dirs),
                               "responses": sum(len(r) for r in stored.values()), "changed_verdicts": changed}
    if write_report:
        from distill_ray.report import write_report as report

        summary["report"] = report(exp_dir)
    return summary
