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

Bad input raises `RescoreInputError` (the CLI exits 2) naming the file, the line and the field, before anything is
written: a responses row without `benchmark`, `problem_id` or `response`, an item missing from its benchmark file, a
missing benchmark file.

Not guaranteed: timing-dependent verdicts (an MBPP+ per-input time limit) are re-measured on this machine.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Any

from distill_ray.records import BenchmarkScore, EvalItem

REQUIRED_FIELDS = ("benchmark", "problem_id", "response")


class RescoreInputError(ValueError):
    """A stored file that cannot be rescored; the message names the file, the line and the field."""


def score_columns(scores: list[BenchmarkScore]) -> dict[str, Any]:
    """The per-benchmark columns of a trial's results.jsonl row (and the Tune metrics) for a checkpoint's scores."""
    row: dict[str, Any] = {}
    for s in scores:
        b = s["benchmark"]
        row.update({f"{b}/accuracy": s["accuracy"], f"{b}/ci95_low": s["ci95_low"], f"{b}/ci95_high": s["ci95_high"],
                    f"{b}/n": s["n"], f"{b}/format_failure_rate": s["format_failures"] / s["n"] if s["n"] else 0.0,
                    f"{b}/length_capped": int(s.get("length_capped") or 0)})  # responses cut at max_new_tokens
    return row


def _read_jsonl(path: str, required: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    rows = []
    try:
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise RescoreInputError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
                if not isinstance(row, dict):
                    raise RescoreInputError(f"{path}:{lineno}: a row must be a JSON object")
                for name in required:
                    if name not in row:
                        raise RescoreInputError(f"{path}:{lineno}: missing field {name!r}")
                rows.append(row)
    except OSError as exc:
        raise RescoreInputError(f"{path}: cannot read ({exc.strerror})") from None
    return rows


def evaluation_dirs(exp_dir: str) -> list[str]:
    """Every stored evaluation of the experiment: the base models', then each trial's checkpoints."""
    found = sorted(glob.glob(os.path.join(exp_dir, "base", "*", "responses.jsonl")))
    found += sorted(glob.glob(os.path.join(exp_dir, "trials", "*", "eval", "step-*", "responses.jsonl")))
    return [os.path.dirname(p) for p in found]


def rescore_experiment(exp_dir: str, *, allow_network_risk: bool = False, write_report: bool = True) -> dict[str, Any]:
    """Re-judge and rewrite an experiment's scores (see the module docstring); returns a summary."""
    from distill_ray.evaluate import eval_item, score_responses, summarise
    from distill_ray.evaluate.backends import Generation

    exp_dir = os.path.abspath(exp_dir)
    if not os.path.isdir(exp_dir):
        raise RescoreInputError(f"{exp_dir}: no such experiment directory")
    dirs = evaluation_dirs(exp_dir)
    stored: dict[str, list[dict[str, Any]]] = {}
    old_scores: dict[str, list[dict[str, Any]]] = {}
    for folder in dirs:
        stored[folder] = _read_jsonl(os.path.join(folder, "responses.jsonl"), REQUIRED_FIELDS)
        scores_path = os.path.join(folder, "scores.json")
        try:
            with open(scores_path, encoding="utf-8") as handle:
                old_scores[folder] = json.load(handle)
        except (OSError, ValueError) as exc:
            raise RescoreInputError(f"{scores_path}: cannot read scores ({exc})") from None

    # every response of a benchmark, across all evaluations, judged in one call (MBPP+ ground truth computed once)
    problems: dict[str, dict[str, dict[str, Any]]] = {}
    jobs: dict[str, list[tuple[str, int]]] = {}
    for folder, rows in stored.items():
        for lineno, row in enumerate(rows, 1):
            name = row["benchmark"]
            if name not in problems:
                path = os.path.join(exp_dir, "benchmarks", f"{name}.jsonl")
                if not os.path.exists(path):
                    raise RescoreInputError(f"{os.path.join(folder, 'responses.jsonl')}:{lineno}: field 'benchmark': "
                                            f"{name!r} has no stored items ({path} is missing)")
                problems[name] = {p["id"]: p for p in _read_jsonl(path, ("id", "domain", "prompt", "answer",
                                                                          "tests"))}
            if row["problem_id"] not in problems[name]:
                raise RescoreInputError(f"{os.path.join(folder, 'responses.jsonl')}:{lineno}: field 'problem_id': "
                                        f"{row['problem_id']!r} is not an item of {name}")
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
            scores.append(summarise(old["benchmark"], items, step=old["step"], samples=old["samples"]))
        new_scores[folder] = scores
        outputs[os.path.join(folder, "responses.jsonl")] = "".join(json.dumps(r) + "\n" for r in new_rows)
        outputs[os.path.join(folder, "scores.json")] = json.dumps(scores, indent=1)
    for results in sorted(glob.glob(os.path.join(exp_dir, "trials", "*", "results.jsonl"))):
        trial = os.path.dirname(results)
        rows = _read_jsonl(results, ("step",))
        for lineno, row in enumerate(rows, 1):
            folder = os.path.join(trial, "eval", f"step-{int(row['step']):06d}")
            if folder not in new_scores:
                raise RescoreInputError(f"{results}:{lineno}: field 'step': no stored evaluation at {folder}")
            row.update(score_columns(new_scores[folder]))
        outputs[results] = "".join(json.dumps(r) + "\n" for r in rows)

    replace_all(outputs)
    summary: dict[str, Any] = {"experiment_dir": exp_dir, "evaluations": len(dirs),
                               "responses": sum(len(r) for r in stored.values()), "changed_verdicts": changed}
    if write_report:
        from distill_ray.report import write_report as report

        summary["report"] = report(exp_dir)
    return summary


def _write_temp(path: str, text: str) -> str:
    tmp = f"{path}.rescore-{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def replace_all(outputs: dict[str, str]) -> None:
    """Write every file to a temporary sibling, and only when all are written, rename them over their targets."""
    temps: dict[str, str] = {}
    try:
        for path, text in outputs.items():
            temps[path] = _write_temp(path, text)
    except BaseException:
        for tmp in temps.values():
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise
    for path, tmp in temps.items():
        os.replace(tmp, path)
