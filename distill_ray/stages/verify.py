"""The verify stage of a sweep: judge one (teacher, domain)'s raw traces and leave verified.jsonl plus statistics.

    from distill_ray.stages.verify import verify_stage, training_examples
    result = verify_stage(sweep, exp_dir, "sonnet", "math", problems)   # or: distill-ray verify SWEEP.yaml
    examples = training_examples(exp_dir, "sonnet", "math", "drop")     # what a trial trains on

The judging itself is `verify.batch.judge_rows` (in this process, or Ray Data above a size). The stage's marker is
traces/<teacher>/<domain>/done.json (records.TracesDone), written last.

Not guaranteed: any order of verified.jsonl beyond the raw traces' read order (which follows Ray Data's part
files); `training_examples` sorts, so what a trial trains on does not depend on it.
"""

from __future__ import annotations

import os

from distill_ray import experiment as ex
from distill_ray.config import SweepConfig
from distill_ray.records import Problem, TracesDone, TrainExample
from distill_ray.stages.run import log
from distill_ray.teacher.parts import read_traces


def verify_traces(exp_dir: str, teacher_name: str, domain: str, problems: list[Problem], *,
                  allow_network_risk: bool, strict_boxes: bool = False, force: bool = False) -> TracesDone:
    """Verify the raw traces of one (teacher, domain): verified.jsonl and statistics in done.json."""
    from distill_ray.verify.batch import judge_rows
    from distill_ray.verify.stats import trace_statistics

    folder = ex.traces_dir(exp_dir, teacher_name, domain)
    if ex.is_done(folder) and not force:
        return ex.read_done(folder)
    generated = ex.generated_file(exp_dir, teacher_name, domain)
    if not os.path.exists(generated):
        raise FileNotFoundError(f"{folder}: no generated traces yet (run `distill-ray generate` first)")
    # parts (Ray Data) or one file, newest row of each wins
    traces = read_traces(ex.raw_traces_dir(exp_dir, teacher_name, domain))
    by_id = {p["id"]: p for p in problems}
    answered = [t for t in traces if t["status"] == "ok" and t["problem_id"] in by_id]
    rows = [{**t, "answer": by_id[t["problem_id"]]["answer"], "tests": by_id[t["problem_id"]]["tests"]}
            for t in answered]
    verified = judge_rows(rows, allow_network_risk=allow_network_risk, strict_boxes=strict_boxes)
    ex.write_jsonl(ex.verified_file(exp_dir, teacher_name, domain), verified)
    stats = trace_statistics(verified)
    key = next(iter(stats)) if stats else None
    result = TracesDone(generation=ex.read_json(generated), statistics=stats.get(key, {}) if key else {},
                        failed_requests=len(traces) - len(answered), teacher=teacher_name, domain=domain)
    ex.mark_done(folder, result)
    return result


def verify_stage(sweep: SweepConfig, exp_dir: str, teacher_name: str, domain: str, problems: list[Problem], *,
                 force: bool = False) -> TracesDone:
    """The verify stage with the sweep's options (network risk, the domain's strict boxes), and a log line when it
    ran."""
    ran = force or not ex.is_done(ex.traces_dir(exp_dir, teacher_name, domain))
    result = verify_traces(exp_dir, teacher_name, domain, problems, allow_network_risk=sweep.allow_network_risk,
                           strict_boxes=sweep.domains[domain].verifier_options.strict_boxes, force=force)
    if ran:
        log(f"traces[{teacher_name}/{domain}]: {result['statistics'].get('n', 0)} verified rows, "
            f"pass rate {result['statistics'].get('pass_rate', float('nan')):.3f}")
    return result


def training_examples(exp_dir: str, teacher: str, domain: str, policy: str = "drop") -> list[TrainExample]:
    """Verified, passing traces of a (teacher, domain) as training examples, sorted by (problem id, sample index);
    truncated ones per the teacher's policy."""
    rows = ex.read_jsonl(ex.verified_file(exp_dir, teacher, domain))
    keep = [r for r in rows if r["verdict"] == "pass" and (policy == "keep" or not r.get("truncated"))]
    # verified.jsonl follows the raw traces' read order, which depends on Ray Data's part-file names; training's
    # seeded shuffle must start from an order that depends on the traces alone.
    keep.sort(key=lambda r: (str(r["problem_id"]), int(r["sample_index"])))
    return [TrainExample(id=f"{r['problem_id']}#{r['sample_index']}", prompt=r["prompt"], response=r["text"])
            for r in keep]
