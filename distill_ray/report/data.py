"""Reading an experiment directory into plain dicts for the report; the one place the report knows benchmark names.

    from distill_ray.report.data import load_experiment
    data = load_experiment("runs/local")   # rows, base, traces, benchmarks, items, base_items, eval_scores

Files read: `trials/*/results.jsonl` (one row per checkpoint), `trials/*/eval/step-XXXXXX/{responses.jsonl,scores.json}`
and `base/<student>/{responses.jsonl,scores.json}` (per-item verdicts and per-benchmark scores), `traces/*/*/done.json`,
`problems/*/done.json` (training problems kept and dropped) and `sweep.json` for the grid's order of teachers and
domains (the seed's row order; alphabetical without it).
Per-item fields added later (`base_status`, `plus_status`, `finish_reason`, `generated_tokens`; `base_correct`,
`length_capped` in scores) are optional: an experiment written before them loads, and what needs them shows "—".
A row without a required field raises ConfigError naming the file, the line and the field; nothing is written here.

Not guaranteed: consistency between files written by different runs of a resumed experiment (each file is read as is).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, NamedTuple

from distill_ray import experiment as ex
from distill_ray.config import ConfigError
from distill_ray.files import InputError, iter_jsonl, read_json

RESULT_FIELDS = ("trial", "teacher", "student", "domain", "step", "samples", "train_loss")
ITEM_FIELDS = ("benchmark", "problem_id", "verdict")
VERDICTS = ("pass", "fail", "error")


class BenchmarkInfo(NamedTuple):
    domain: str | None  # "math", "code" or None (a benchmark the report does not place in a column)
    display: str  # the column title, e.g. "MATH-500"
    short: str  # as the seed's summary headers name it ("MBPP+ at best MATH")
    base_only: str | None  # title of the base-tests-only score for benchmarks with plus tests ("MBPP"), else None


def benchmark_info(name: str) -> BenchmarkInfo:
    """What the report shows of a benchmark, from the registry (distill_ray/benchmarks.py); a name the registry does
    not know is shown as itself, in no column."""
    from distill_ray.benchmarks import BENCHMARKS

    entry = BENCHMARKS.get(name)
    if entry is None:
        return BenchmarkInfo(None, name, name, None)
    return BenchmarkInfo(entry.domain, entry.display, entry.short or entry.display, entry.base_display)


def _as_config_error(exc: InputError) -> ConfigError:
    """The shared reader's error in the report's terms (the CLI prints either as file, where, reason; exit 2)."""
    where = "file" if exc.line is None else f"line {exc.line}"
    return ConfigError(exc.file, f"{where}: {exc.field}" if exc.field else where, exc.reason)


def read_checked_jsonl(path: str, required: tuple[str, ...] = (),
                       check: Callable[[dict], tuple[str, str] | None] | None = None) -> list[dict]:
    """Rows of a JSONL file (files.iter_jsonl); ConfigError(file, "line N: field", reason) for a broken line, a
    missing field, or a row `check` returns (field, reason) for."""
    rows = []
    try:
        for number, row in iter_jsonl(path, required):
            problem = check(row) if check else None
            if problem:
                raise ConfigError(path, f"line {number}: {problem[0]}", problem[1])
            rows.append(row)
    except InputError as exc:
        raise _as_config_error(exc) from None
    return rows


def _read_json(path: str) -> Any:
    try:
        return read_json(path)
    except InputError as exc:
        raise _as_config_error(exc) from None


def read_items(path: str) -> dict[str, dict[str, dict]]:
    """{benchmark: {problem_id: {"verdict", "base_status", "plus_status", "finish_reason"}}} of a responses file.

    The response text is dropped on reading: the report needs verdicts, and a seed-size experiment holds tens of
    thousands of long responses."""
    def known_verdict(row: dict) -> tuple[str, str] | None:
        if row["verdict"] in VERDICTS:
            return None
        return "verdict", f"{row['verdict']!r} is not one of {', '.join(VERDICTS)}"

    items: dict[str, dict[str, dict]] = {}
    for row in read_checked_jsonl(path, ITEM_FIELDS, known_verdict):
        items.setdefault(row["benchmark"], {})[str(row["problem_id"])] = {
            "verdict": row["verdict"], "base_status": row.get("base_status"), "plus_status": row.get("plus_status"),
            "finish_reason": row.get("finish_reason")}
    return items


def _scores(path: str) -> dict[str, dict]:
    return {s["benchmark"]: s for s in _read_json(path)} if os.path.exists(path) else {}


def contamination_audits(exp_dir: str) -> dict[str, dict[str, Any]]:
    """{domain: decontamination audit} of an experiment (problems.audit.contamination_section renders them)."""
    return {domain: _read_json(path) for domain, path in ex.contamination_files(exp_dir).items()}


def load_experiment(exp_dir: str) -> dict[str, Any]:
    """All numbers of an experiment: trial rows, base scores, per-item verdicts, trace statistics."""
    if not os.path.isdir(exp_dir):
        raise FileNotFoundError(f"{exp_dir}: no such experiment directory")
    rows: list[dict] = []
    for path in ex.results_files(exp_dir):
        rows.extend(read_checked_jsonl(path, RESULT_FIELDS))
    base: dict[str, dict[str, dict]] = {}
    base_items: dict[str, dict[str, dict[str, dict]]] = {}
    for path in ex.base_scores_files(exp_dir):
        student = os.path.basename(os.path.dirname(path))
        base[student] = _scores(path)
        responses = ex.responses_file(os.path.dirname(path))
        if os.path.exists(responses):
            base_items[student] = read_items(responses)
    items: dict[tuple[str, int], dict[str, dict[str, dict]]] = {}
    eval_scores: dict[tuple[str, int], dict[str, dict]] = {}
    for row in rows:
        folder = ex.eval_dir(exp_dir, row["trial"], int(row["step"]))
        if os.path.exists(ex.responses_file(folder)):
            items[(row["trial"], int(row["step"]))] = read_items(ex.responses_file(folder))
        eval_scores[(row["trial"], int(row["step"]))] = _scores(ex.scores_file(folder))
    order: dict[str, list[str]] = {"teachers": [], "domains": ["math", "code"]}
    if os.path.exists(ex.sweep_file(exp_dir)):
        grid = (_read_json(ex.sweep_file(exp_dir)) or {}).get("grid") or {}
        order = {"teachers": list(grid.get("teachers") or []), "domains": list(grid.get("domains") or ["math", "code"])}
    traces = [_read_json(p) for p in ex.traces_done_files(exp_dir)]
    problems = {os.path.basename(os.path.dirname(p)): _read_json(p) for p in ex.problems_done_files(exp_dir)}
    benchmarks: list[str] = []
    for row in rows:
        for key in row:
            if key.endswith("/accuracy") and key.split("/")[0] not in benchmarks:
                benchmarks.append(key.split("/")[0])
    for scores in base.values():
        benchmarks.extend(name for name in scores if name not in benchmarks)
    return {"rows": rows, "base": base, "traces": traces, "benchmarks": benchmarks, "items": items,
            "base_items": base_items, "eval_scores": eval_scores, "order": order,
            "problems": problems}
