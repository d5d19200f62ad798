"""The verify stage of a sweep: judge one (teacher, domain)'s raw traces and leave verified.jsonl plus statistics.

    from distill_ray.verify.traces import verify_traces
    result = verify_traces(sweep, exp_dir, "sonnet", "math", problems)     # or: distill-ray verify SWEEP.yaml

Below RAY_DATA_VERIFY_MIN_ROWS rows (or without Ray) the rows are judged in this process (`verify_rows`); above it,
and with Ray initialised, across the cluster as a Ray Data stage (`verify_dataset`, one actor per live node), in the
same order. The stage's marker is traces/<teacher>/<domain>/done.json (records.TracesDone), written last.

Not guaranteed: that a Ray Data run is faster for small inputs (starting actors costs seconds, hence the threshold).
"""

from __future__ import annotations

import os

from distill_ray import experiment as ex
from distill_ray.records import Problem, TracesDone
from distill_ray.teacher.parts import read_traces

# Below this many traces, judging in the driver beats starting Ray Data actors.
RAY_DATA_VERIFY_MIN_ROWS = 5000


def judge(rows: list[dict], allow_network_risk: bool, strict_boxes: bool = False) -> list[dict]:
    """Judge rows here, or across the cluster with Ray Data when there are many and a cluster is attached."""
    import ray

    from distill_ray.verify.sandbox import shared_pool
    from distill_ray.verify.stage import verify_dataset, verify_rows

    if ray.is_initialized() and len(rows) >= RAY_DATA_VERIFY_MIN_ROWS:
        nodes = max(1, len([n for n in ray.nodes() if n.get("Alive")]))
        ds = verify_dataset(ray.data.from_items(rows), concurrency=nodes, allow_network_risk=allow_network_risk,
                            strict_boxes=strict_boxes)
        order = {(r["problem_id"], r["sample_index"]): i for i, r in enumerate(rows)}
        return sorted(ds.take_all(), key=lambda r: order[(r["problem_id"], r["sample_index"])])
    return verify_rows(rows, pool=shared_pool(allow_network_risk), strict_boxes=strict_boxes)


def verify_traces(sweep, exp_dir: str, teacher_name: str, domain: str, problems: list[Problem], *,
                  force: bool = False) -> TracesDone:
    """Verify the raw traces of one (teacher, domain): verified.jsonl and statistics in done.json."""
    from distill_ray.verify.stats import trace_statistics

    folder = ex.traces_dir(exp_dir, teacher_name, domain)
    if ex.is_done(folder) and not force:
        return ex.read_done(folder)
    generated = os.path.join(folder, "generated.json")
    if not os.path.exists(generated):
        raise FileNotFoundError(f"{folder}: no generated traces yet (run `distill-ray generate` first)")
    traces = read_traces(os.path.join(folder, "raw"))  # parts (Ray Data) or one file, newest row of each wins
    by_id = {p["id"]: p for p in problems}
    answered = [t for t in traces if t["status"] == "ok" and t["problem_id"] in by_id]
    rows = [{**t, "answer": by_id[t["problem_id"]]["answer"], "tests": by_id[t["problem_id"]]["tests"]}
            for t in answered]
    verified = judge(rows, sweep.allow_network_risk, sweep.domains[domain].verifier_options.strict_boxes)
    ex.write_jsonl(os.path.join(folder, "verified.jsonl"), verified)
    stats = trace_statistics(verified)
    key = next(iter(stats)) if stats else None
    result = TracesDone(generation=ex.read_json(generated), statistics=stats.get(key, {}) if key else {},
                        failed_requests=len(traces) - len(answered), teacher=teacher_name, domain=domain)
    ex.mark_done(folder, result)
    return result
