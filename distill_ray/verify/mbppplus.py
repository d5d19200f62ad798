"""MBPP+ scorer with evalplus's semantics, running every program in the sandbox and judging values outside it.

    distill-ray score mbppplus --samples S.jsonl [--dataset MbppPlus.jsonl[.gz]] --output O.json

Samples are evalplus's format (`task_id` with `solution`, or `completion` appended to the task's prompt). Semantics
kept from evalplus (reimplemented here, nothing of its execution path is used):
- code extraction: a solution that is valid Python is used as written (as `evalplus.evaluate` does); otherwise the
  sanitizer keeps the longest syntactically valid span of lines, then its imports, classes, functions that return,
  and top-level assignments reachable from the entry point;
- base and plus inputs run in separate fresh processes; per-input time limit max(1 s, 4 x ground-truth time); the
  whole run is limited to the sum of those plus a second (overrun: "timeout");
- comparison: `==`, then for float outputs (or a task `atol`) numpy `allclose` with rtol 1e-7, atol max(atol, 1e-6);
  the special oracles (set-equality tasks, output-not-None tasks, and the four per-task exceptions).
Differences by design: the expected outputs never enter the program's process, only plain builtin values come back
(an object with a custom `__eq__` fails), and the ground truth is computed in the sandbox and cached where no program
can write. Inputs of the MBPP+ tasks that evalplus turns into tuples/sets are converted the same way by task number.

The sweep judges its MBPP+ items with the same code (`judge_responses`): each Problem carries an "evalplus" test spec
(`evalplus_spec`: the release row's inputs, canonical solution and atol), the response's last python block goes through
`solution_code` like a sample's solution, and `run_base_plus` runs base and plus inputs for both callers. An item
passes MBPP+ when base and plus both pass (as evalplus and the seed report); base alone is MBPP's score.

Not guaranteed: identical timing-based verdicts on a loaded machine (as with evalplus, per-input limits depend on
measured ground-truth times).
"""

from __future__ import annotations

import ast
import hashlib
import json
import math
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from distill_ray.files import InputError, iter_jsonl, write_text
from distill_ray.paths import cache_root
from distill_ray.verify._launcher import contains_opaque, decode, encode
from distill_ray.verify.sandbox import SandboxLimits, SandboxPool

MIN_TIME_LIMIT = 1.0
GT_TIME_LIMIT_FACTOR = 4.0
MAX_RUN_WALL_S = 60.0  # cap of one split's whole run (the sum of its per-input limits), plus a second

OUTPUT_NOT_NONE = frozenset({"check_str", "text_match_three", "text_starta_endb"})
OUTPUT_SET_EQ = frozenset({"similar_elements", "find_char_long", "common_in_nested_lists", "extract_singly",
                           "larg_nnum", "intersection_array", "find_dissimilar", "Diff"})
REQUIRED_FIELDS = ("task_id", "prompt", "canonical_solution", "entry_point", "base_input", "plus_input")


# ------------------------------------------------------------------ data


def read_numbered_rows(path: str, required: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Rows of a JSONL(.gz) file (files.iter_jsonl), each with its line number under "_line" for later errors."""
    return [{**row, "_line": number} for number, row in iter_jsonl(path, required)]


def _to_tuples(value: Any) -> Any:
    if isinstance(value, list):
        return tuple(_to_tuples(v) for v in value)
    return value


def deserialize_inputs(task_id: str, inputs: list) -> list:
    """MBPP+ stores some tuple, set and complex arguments as JSON lists/strings; restore them by task number."""
    try:
        number = int(str(task_id).split("/")[-1])
    except ValueError:
        return inputs
    if number in (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740,
                  744, 809):
        return [[tuple(x) for x in inp] for inp in inputs]
    if number in (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780):
        return [[[tuple(x) for x in arg] for arg in inp] for inp in inputs]
    if number in (75, 413, 444, 753):
        return [[[tuple(x) for x in inp[0]], inp[1]] for inp in inputs]
    if number in (106, 750):
        return [[inp[0], tuple(inp[1])] for inp in inputs]
    if number == 115:
        return [[[set(x) if isinstance(x, list) and x else {} for x in inp[0]]] for inp in inputs]
    if number == 124:
        return [(float(inp[0]), complex(inp[1])) for inp in inputs]
    if number in (250, 405, 446, 617, 720, 763, 808):
        return [[tuple(inp[0]), inp[1]] for inp in inputs]
    if number in (259, 401, 445):
        return [[tuple(tuple(x) for x in arg) for arg in inp] for inp in inputs]
    if number == 278:
        return [[tuple(tuple(x) if isinstance(x, list) else x for x in inp[0])] for inp in inputs]
    if number == 307:
        return [[tuple(inp[0]), inp[1], inp[2]] for inp in inputs]
    if number == 722:
        return [[{k: tuple(v) for k, v in inp[0].items()}] + inp[1:] for inp in inputs]
    if number == 252:
        return [[complex(inp[0])] for inp in inputs]
    if number in (580, 615, 791):
        return [_to_tuples(inp) for inp in inputs]
    return inputs


def read_mbppplus_tasks(path: str) -> dict[str, dict[str, Any]]:
    """Tasks by task_id from a local MBPP+ file (.jsonl or .jsonl.gz), inputs restored to their Python types."""
    tasks = {}
    for row in read_numbered_rows(path, REQUIRED_FIELDS):
        for name in ("base_input", "plus_input"):
            if row[name] == {}:
                row[name] = []  # one MBPP+ task (Mbpp/793) ships its empty plus inputs as {}
            if not isinstance(row[name], list):
                raise InputError(path, "must be a list", row["_line"], name)
        row["base_input"] = deserialize_inputs(row["task_id"], row["base_input"])
        row["plus_input"] = deserialize_inputs(row["task_id"], row["plus_input"])
        row["atol"] = float(row.get("atol") or 0)
        tasks[row["task_id"]] = row
    return tasks


# ------------------------------------------------------------------ sanitizer


def _parses(code: str) -> bool:
    try:
        ast.parse(code)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return False
    return True


def longest_valid_span(text: str, max_lines: int = 400) -> str:
    """The contiguous run of lines that parses and holds the most non-blank lines (first such run on ties)."""
    lines = text.split("\n")[:max_lines]
    best, best_span = 0, (0, -1)
    weight = [1 if line.strip() else 0 for line in lines]
    prefix = [0]
    for w in weight:
        prefix.append(prefix[-1] + w)
    for i in range(len(lines)):
        if prefix[len(lines)] - prefix[i] <= best:
            break
        for j in range(len(lines) - 1, i, -1):
            size = prefix[j + 1] - prefix[i]
            if size <= best:
                break
            if _parses("\n".join(lines[i : j + 1])):
                best, best_span = size, (i, j)
                break
    return "\n".join(lines[best_span[0] : best_span[1] + 1])


def _names_in(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)} | {
        n.attr for n in ast.walk(node) if isinstance(n, ast.Attribute)
    } | {n.name for n in ast.walk(node) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))} | {
        a.arg for n in ast.walk(node) if isinstance(n, ast.arguments) for a in n.args + n.kwonlyargs
    }


def sanitize(text: str, entry_point: str | None = None) -> str:
    """Extract the program from a model completion (see the module docstring); returns "" when nothing is found."""
    code = longest_valid_span(text)
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return ""
    lines = code.split("\n")

    def source(node: ast.AST) -> str:
        start = node.lineno - 1
        if getattr(node, "decorator_list", None):
            start = min(d.lineno for d in node.decorator_list) - 1
        return "\n".join(lines[start : node.end_lineno])

    imports, definitions, seen = [], [], set()
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            imports.append(source(node))
            continue
        if isinstance(node, ast.ClassDef):
            name = node.name
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if not any(isinstance(n, ast.Return) for n in ast.walk(node)):
                continue
            name = node.name
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            target = node.targets[0] if isinstance(node, ast.Assign) else node.target
            if not isinstance(target, ast.Name):
                continue
            name = target.id
        else:
            continue
        if name in seen:
            continue
        seen.add(name)
        definitions.append((name, node))
    keep = {name for name, _ in definitions}
    if entry_point:
        deps = {name: _names_in(node) for name, node in definitions}
        keep, todo = {entry_point}, [entry_point]
        while todo:
            for dep in deps.get(todo.pop(), ()):
                if dep not in keep:
                    keep.add(dep)
                    todo.append(dep)
    parts = imports + [source(node) for name, node in definitions if name in keep]
    result = "\n".join(parts).strip()
    return result or code


def solution_code(sample: dict[str, Any], task: dict[str, Any]) -> str:
    if isinstance(sample.get("solution"), str):
        text = sample["solution"]
    else:
        text = task["prompt"] + sample["completion"]
    if _parses(text):
        return text
    return sanitize(text, task["entry_point"])


# ------------------------------------------------------------------ comparison (evalplus semantics, plain values)


def _is_floats(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, (list, tuple)) and value:
        return all(isinstance(v, float) for v in value)
    return False


def _allclose(out: Any, exp: Any, atol: float) -> bool:
    import numpy as np

    try:
        return bool(np.allclose(out, exp, rtol=1e-07, atol=atol))
    except Exception:
        return False


def _surface_area_oracle(base_edge: float, height: float) -> float:
    slant = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 2 * base_edge * slant)


def _digit_distance_oracle(a: int, b: int) -> int:
    x, y = str(a), str(b)
    width = max(len(x), len(y))
    return sum(abs(int(p) - int(q)) for p, q in zip(x.zfill(width), y.zfill(width)))


@dataclass
class _Tolerance:
    atol: float


def outputs_match(entry_point: str, out: Any, exp: Any, inp: Any, tol: _Tolerance) -> bool:
    """One input's verdict; `tol` carries evalplus's per-run atol, which a float output raises for later inputs."""
    if contains_opaque(out):
        return False
    try:
        exact = bool(out == exp)
        if entry_point == "are_equivalent":
            exact = True
        elif entry_point == "sum_div":
            exact = exact or out == 0
        elif entry_point == "surface_Area":
            exact = exact or abs(out - _surface_area_oracle(*inp)) <= tol.atol
        elif entry_point == "digit_distance_nums":
            exact = exact or out == _digit_distance_oracle(*inp)
        elif entry_point in OUTPUT_SET_EQ:
            exact = set(out) == set(exp)
        elif entry_point in OUTPUT_NOT_NONE:
            exact = (out == exp) if isinstance(out, bool) else (exp == (out is not None))
    except Exception:
        return False
    if tol.atol == 0 and _is_floats(exp):
        tol.atol = 1e-6
    if not exact and tol.atol != 0:
        if type(out) is not type(exp):
            return False
        if isinstance(exp, (list, tuple)) and len(out) != len(exp):
            return False
        return _allclose(out, exp, tol.atol)
    return exact


# ------------------------------------------------------------------ ground truth and scoring


def _call_job(code: str, task: dict[str, Any], inputs: list, time_limits: list[float] | None,
              record_time: bool = False) -> dict[str, Any]:
    job = {"format": "call", "code": code, "entry_point": task["entry_point"],
           "inputs": [encode(tuple(inp)) for inp in inputs], "time_limits": time_limits, "record_time": record_time}
    if task["entry_point"] in OUTPUT_NOT_NONE:
        job["output_not_none"] = True
    return job


def ground_truth(tasks: dict[str, dict[str, Any]], pool: SandboxPool, dataset_sha256: str | None = None,
                 use_cache: bool = True) -> dict[str, dict[str, Any]]:
    """Expected outputs and reference times per task and split, from the canonical solutions (run in the sandbox)."""
    path = None
    if use_cache and dataset_sha256:
        path = os.path.join(cache_root(), "mbppplus-groundtruth-%s.json" % dataset_sha256[:32])
        cached = _read_cache(path)
        if cached is not None and set(cached) >= set(tasks):
            return {tid: _decode_truth(cached[tid]) for tid in tasks}
    jobs, keys = [], []
    limits = SandboxLimits(wall_s=120.0)
    for tid, task in tasks.items():
        code = task["prompt"] + task["canonical_solution"]
        for split in ("base", "plus"):
            inputs = task[split + "_input"]
            jobs.append(_call_job(code, task, inputs, [60.0] * len(inputs), record_time=True))
            keys.append((tid, split))
    runs = pool.map(jobs, limits)
    raw: dict[str, dict[str, Any]] = {}
    for (tid, split), run in zip(keys, runs):
        results = (run.report or {}).get("results") or []
        complete = len(results) == len(tasks[tid][split + "_input"]) and not any("e" in r for r in results)
        if run.outcome != "exited" or not complete:
            raise RuntimeError("ground truth failed for %s (%s): %s" % (tid, split, run.outcome))
        raw.setdefault(tid, {})[split] = [r["v"] for r in results]
        raw[tid][split + "_time"] = [r["t"] for r in results]
    if path:
        _write_cache(path, raw)
    return {tid: _decode_truth(raw[tid]) for tid in tasks}


def _decode_truth(raw: dict[str, Any]) -> dict[str, Any]:
    return {"base": [decode(v) for v in raw["base"]], "plus": [decode(v) for v in raw["plus"]],
            "base_time": raw["base_time"], "plus_time": raw["plus_time"]}


def _read_cache(path: str) -> dict[str, Any] | None:
    # a digest inside the file guards against partial writes; programs cannot reach this path at all
    try:
        with open(path) as f:
            stored = json.load(f)
        body = json.dumps(stored["truth"], sort_keys=True)
        if hashlib.sha256(body.encode()).hexdigest() != stored["sha256"]:
            return None
        return stored["truth"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _write_cache(path: str, truth: dict[str, Any]) -> None:
    body = json.dumps(truth, sort_keys=True)
    write_text(path, json.dumps({"sha256": hashlib.sha256(body.encode()).hexdigest(), "truth": truth}))


def _status(run: Any, task: dict[str, Any], expected: list, inputs: list) -> tuple[str, list[bool]]:
    if run.outcome == "timeout":
        return "timeout", []
    if run.outcome != "exited" or run.report is None or run.report.get("stage") != "done":
        return "fail", []
    results = run.report.get("results", [])
    tol = _Tolerance(task["atol"])
    details = []
    for i, exp in enumerate(expected):
        if i >= len(results) or "e" in results[i]:
            details.append(False)
            break
        ok = outputs_match(task["entry_point"], decode(results[i]["v"]), exp, inputs[i], tol)
        details.append(ok)
        if not ok:
            break
    status = "pass" if len(details) == len(expected) and all(details) else "fail"
    return status, details


def run_base_plus(pairs: list[tuple[str, dict[str, Any]]], pool: SandboxPool, truth: dict[str, dict[str, Any]], *,
                  base_only: bool = False) -> list[dict[str, Any]]:
    """The one MBPP+ judge both `score mbppplus` and the sweep use: per (program, task), the base and plus statuses
    ("pass", "fail" or "timeout"; plus None when base_only), the per-input details and whether the sandbox itself
    failed twice (`infra_error`, an infrastructure problem rather than the program's)."""
    jobs, index = [], []
    for n, (code, task) in enumerate(pairs):
        for split in ("base",) if base_only else ("base", "plus"):
            limits = [max(MIN_TIME_LIMIT, GT_TIME_LIMIT_FACTOR * t) for t in truth[task["task_id"]][split + "_time"]]
            jobs.append((_call_job(code, task, task[split + "_input"], limits),
                         SandboxLimits(wall_s=min(MAX_RUN_WALL_S, sum(limits)) + 1.0)))
            index.append((n, split))
    runs = _run_all(pool, jobs)
    out = [{"base_status": None, "plus_status": None, "base_details": [], "plus_details": [], "infra_error": False}
           for _ in pairs]
    for position, ((n, split), run) in enumerate(zip(index, runs)):
        task = pairs[n][1]
        if run.outcome == "infra_error":
            run = pool.run(*jobs[position])  # retried once: infrastructure, not the program
            if run.outcome == "infra_error":
                out[n]["infra_error"] = True
        status, details = _status(run, task, truth[task["task_id"]][split], task[split + "_input"])
        out[n][split + "_status"], out[n][split + "_details"] = status, details
    return out


def score_mbppplus(samples: list[dict[str, Any]], tasks: dict[str, dict[str, Any]], pool: SandboxPool,
                   truth: dict[str, dict[str, Any]], *, base_only: bool = False) -> dict[str, Any]:
    """evalplus's result shape ({"eval": {task_id: [...]}}) plus a "summary"."""
    codes = [solution_code(sample, tasks[sample["task_id"]]) for sample in samples]
    results = run_base_plus([(code, tasks[s["task_id"]]) for code, s in zip(codes, samples)], pool, truth,
                            base_only=base_only)
    eval_out: dict[str, list[dict[str, Any]]] = {}
    for n, sample in enumerate(samples):
        tid = sample["task_id"]
        r = results[n]
        eval_out.setdefault(tid, []).append({
            "task_id": tid,
            "solution": codes[n],
            "base_status": r["base_status"],
            "plus_status": r["plus_status"],
            "base_fail_tests": _failed_inputs(r["base_status"], r["base_details"], tasks[tid]["base_input"]),
            "plus_fail_tests": _failed_inputs(r["plus_status"], r["plus_details"], tasks[tid]["plus_input"]),
        })
    summary = summarize(eval_out, base_only)
    # no program in the sample at all: the "no python block" format failure of verdict.FORMAT_FAILURE_REASONS
    summary["format_failures"] = sum(1 for code in codes if not code.strip())
    return {"eval": eval_out, "summary": summary}


# ------------------------------------------------------------------ the sweep's path: test specs of format "evalplus"

EVALPLUS_SPEC_FIELDS = ("task_id", "prompt", "canonical_solution", "entry_point", "base_input", "plus_input")


def evalplus_spec(row: dict[str, Any]) -> dict[str, Any]:
    """The test spec (Problem.tests, format "evalplus") of one MBPP+ release row: everything the judge needs, inputs
    as released (restored to Python types by `task_from_spec`), so a stored benchmark can be judged anywhere."""
    spec = {"format": "evalplus", **{name: row[name] for name in EVALPLUS_SPEC_FIELDS}}
    spec["atol"] = float(row.get("atol") or 0)
    for name in ("base_input", "plus_input"):
        if spec[name] == {}:
            spec[name] = []  # Mbpp/793 ships its empty plus inputs as {}
    return spec


def task_from_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """A task as `read_mbppplus_tasks` returns it, from an "evalplus" test spec."""
    task = {name: spec[name] for name in EVALPLUS_SPEC_FIELDS}
    task["base_input"] = deserialize_inputs(task["task_id"], list(spec["base_input"]))
    task["plus_input"] = deserialize_inputs(task["task_id"], list(spec["plus_input"]))
    task["atol"] = float(spec.get("atol") or 0)
    return task


def judge_responses(responses: list[str], specs: list[dict[str, Any]], pool: SandboxPool, *,
                    use_cache: bool = True) -> list[dict[str, Any]]:
    """Model responses (the last ```python block after the reasoning) judged like `score mbppplus` judges a solution:
    one dict per response with verdict ("pass" only when base and plus inputs both pass), reason, extracted program,
    base_status and plus_status ("pass"/"fail"; a timeout is a fail with reason "timeout" or "plus_timeout")."""
    from distill_ray.verify.code import extract_code

    tasks: dict[str, dict[str, Any]] = {}
    for spec in specs:
        if spec["task_id"] not in tasks:
            tasks[spec["task_id"]] = task_from_spec(spec)
    # the ground-truth cache is keyed by the exact tasks judged (a subset or an edited file gets its own entry)
    unique = [spec for _, spec in sorted({s["task_id"]: s for s in specs}.items())]
    digest = hashlib.sha256(json.dumps(unique, sort_keys=True, default=str).encode()).hexdigest()
    truth = ground_truth(tasks, pool, digest, use_cache=use_cache) if tasks else {}
    out: list[dict[str, Any] | None] = [None] * len(responses)
    pairs, where = [], []
    for n, (response, spec) in enumerate(zip(responses, specs, strict=True)):
        block = extract_code(response)
        if block is None:
            out[n] = {"verdict": "fail", "reason": "no_code", "extracted": "", "base_status": "fail",
                      "plus_status": "fail"}
            continue
        task = tasks[spec["task_id"]]
        pairs.append((solution_code({"solution": block}, task), task))
        where.append(n)
    for n, (code, _task), result in zip(where, pairs, run_base_plus(pairs, pool, truth)):
        out[n] = {"extracted": code, **_item_verdict(result)}
    return out  # type: ignore[return-value]


def _item_verdict(result: dict[str, Any]) -> dict[str, Any]:
    base, plus = result["base_status"], result["plus_status"]
    statuses = {"base_status": "pass" if base == "pass" else "fail",
                "plus_status": "pass" if plus == "pass" else "fail"}
    if result["infra_error"]:
        return {"verdict": "error", "reason": "sandbox_error", **statuses}
    if base != "pass":
        return {"verdict": "fail", "reason": "timeout" if base == "timeout" else "wrong_answer", **statuses}
    if plus != "pass":
        return {"verdict": "fail", "reason": "plus_timeout" if plus == "timeout" else "plus_wrong_answer", **statuses}
    return {"verdict": "pass", "reason": "correct", **statuses}


def _failed_inputs(status: str | None, details: list[bool], inputs: list) -> list:
    if status in (None, "pass") or not details:
        return []
    return _jsonable([inputs[len(details) - 1]])


def _jsonable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_jsonable(v) for v in value), key=repr)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, complex):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value


def _run_all(pool: SandboxPool, jobs: list[tuple[dict[str, Any], SandboxLimits]]) -> list[Any]:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(pool.size) as executor:
        return list(executor.map(lambda item: pool.run(*item), jobs))


def summarize(eval_out: dict[str, list[dict[str, Any]]], base_only: bool = False) -> dict[str, Any]:
    from distill_ray.verify.stats import wilson_interval

    n = sum(len(v) for v in eval_out.values())
    base = sum(r["base_status"] == "pass" for v in eval_out.values() for r in v)
    plus = sum(r["base_status"] == "pass" and r["plus_status"] == "pass" for v in eval_out.values() for r in v)
    summary = {
        "n_tasks": len(eval_out),
        "n_samples": n,
        "base_correct": base,
        "base_accuracy": base / n if n else 0.0,
        "base_ci95": list(wilson_interval(base, n)),
        "pass@1": {"base": _pass_at_1(eval_out, "base")},
    }
    if not base_only:
        summary.update(plus_correct=plus, plus_accuracy=plus / n if n else 0.0,
                       plus_ci95=list(wilson_interval(plus, n)))
        summary["pass@1"]["plus"] = _pass_at_1(eval_out, "plus")
    return summary


def _pass_at_1(eval_out: dict[str, list[dict[str, Any]]], split: str) -> float:
    rates = []
    for results in eval_out.values():
        ok = [r["base_status"] == "pass" and (split == "base" or r["plus_status"] == "pass") for r in results]
        rates.append(sum(ok) / len(ok))
    return sum(rates) / len(rates) if rates else 0.0
