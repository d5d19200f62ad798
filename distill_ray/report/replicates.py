"""Replicates as replicates: trials that differ only in their training seed, summarised over the seeds.

    from distill_ray.report.replicates import replicate_groups, replicates_section, replicates_json
    for g in replicate_groups(data): print(g["label"], sorted(g["seeds"]))

A sweep with `grid.extra: {training.seed: [0, 1, 2]}` runs one trial per seed; each trial's rows carry
`extra/training.seed` (sweep.trial_row). Trials with the same student, teacher, domain and other extra axes and at
least two seeds form a group. Per group and benchmark: the mean over seeds at each step with the between-seed range
(min–max), and each seed's best checkpoint (seed-style: highest score on the benchmark, earliest on a tie) with the
spread of those bests. Groups with the same student, domain and other axes but different teachers are compared:
mean-over-seeds accuracy A − B at each seed's best in-domain checkpoint (on the in-domain and the other benchmark)
and at every step both have, with a 95% seed x item bootstrap interval (`stats.seed_item_bootstrap`: each side's
seeds and the shared items resampled, 4,000 resamples, fixed rng seed).

Not guaranteed: the range of 2-3 seeds is what those seeds did, not the population's spread; "best per seed" picks on
the items it reports (optimistic, as the seed's best columns are); a step some seed has not reached yet (a running
experiment) is averaged over the seeds that have it, and the table says how many.
"""

from __future__ import annotations

import itertools
from typing import Any

from distill_ray.report.analysis import best, columns, trials, verdicts
from distill_ray.report.data import benchmark_info
from distill_ray.report.tables import ordered, pct, table
from distill_ray.stats import seed_item_bootstrap, spread

SEED_AXIS = "training.seed"  # the extra grid axis whose values are replicates
RESAMPLES = 4000


def replicate_groups(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Groups of trials that differ only in `training.seed`, in the report's trial order; two seeds at least."""
    groups: dict[tuple, dict[str, Any]] = {}
    for t in trials(data):
        extra = dict(t["extras"])
        if SEED_AXIS not in extra:
            continue
        others = tuple((k, v) for k, v in t["extras"] if k != SEED_AXIS)
        key = (t["student"], t["teacher"], t["domain"], others)
        label = f"{t['teacher']} {t['domain']}" + (
            " (" + ", ".join(f"{k}={v}" for k, v in others) + ")" if others else "")
        group = groups.setdefault(key, {"student": t["student"], "teacher": t["teacher"], "domain": t["domain"],
                                        "others": others, "label": label, "seeds": {}})
        group["seeds"][extra[SEED_AXIS]] = t
    return [g for g in groups.values() if len(g["seeds"]) >= 2]


def step_spread(group: dict[str, Any], bench: str) -> list[dict[str, Any]]:
    """Per step: mean, min and max accuracy over the seeds that scored it, and how many did."""
    by_step: dict[int, list[float]] = {}
    for t in group["seeds"].values():
        for r in t["rows"]:
            if f"{bench}/accuracy" in r:
                by_step.setdefault(int(r["step"]), []).append(float(r[f"{bench}/accuracy"]))
    out = []
    for step in sorted(by_step):
        mean, low, high = spread(by_step[step])
        out.append({"step": step, "mean": mean, "min": low, "max": high, "seeds": len(by_step[step])})
    return out


def best_per_seed(group: dict[str, Any], bench: str) -> list[dict[str, Any]]:
    """Each seed's best checkpoint on `bench` (earliest on a tie): seed, trial, step, accuracy."""
    out = []
    for seed, t in sorted(group["seeds"].items(), key=lambda kv: str(kv[0])):
        top = best(t["rows"], bench)
        if top:
            out.append({"seed": seed, "trial": t["trial"], "step": int(top[0]["step"]),
                        "accuracy": float(top[0][f"{bench}/accuracy"])})
    return out


def _per_seed_verdicts(data: dict[str, Any], picks: list[tuple[str, int]], bench: str) -> list[dict[str, bool]] | None:
    found = [verdicts(data, bench, trial=trial, step=step) for trial, step in picks]
    return None if any(v is None for v in found) else found  # type: ignore[return-value]


def bootstrap(a: list[dict[str, bool]] | None, b: list[dict[str, bool]] | None) -> dict[str, Any] | None:
    """A − B over seeds and items: {delta, ci95_low, ci95_high, items, seeds_a, seeds_b}; None without verdicts."""
    if not a or not b:
        return None
    d, low, high, n = seed_item_bootstrap(a, b, resamples=RESAMPLES)
    if n == 0:
        return None
    return {"delta": d, "ci95_low": low, "ci95_high": high, "items": n, "seeds_a": len(a), "seeds_b": len(b)}


def teacher_differences(data: dict[str, Any], groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every pair of groups that differ only in teacher: A − B at each seed's best in-domain checkpoint (both
    benchmarks) and at each step both sides have for every seed."""
    cols = columns(data["benchmarks"])
    out: list[dict[str, Any]] = []
    by_cell: dict[tuple, list[dict[str, Any]]] = {}
    for g in groups:
        by_cell.setdefault((g["student"], g["domain"], g["others"]), []).append(g)
    for (student, domain, _), cell in by_cell.items():
        in_domain = cols.get(domain)
        for x, y in itertools.combinations(cell, 2):
            if in_domain:
                picks_x = [(p["trial"], p["step"]) for p in best_per_seed(x, in_domain)]
                picks_y = [(p["trial"], p["step"]) for p in best_per_seed(y, in_domain)]
                for bench in ordered(data["benchmarks"]):
                    c = bootstrap(_per_seed_verdicts(data, picks_x, bench), _per_seed_verdicts(data, picks_y, bench))
                    if c:
                        out.append({"student": student, "a": x["label"], "b": y["label"], "benchmark": bench,
                                    "at": f"best {benchmark_info(in_domain).display} per seed", **c})
            steps_x = set.intersection(*({int(r["step"]) for r in t["rows"]} for t in x["seeds"].values()))
            steps_y = set.intersection(*({int(r["step"]) for r in t["rows"]} for t in y["seeds"].values()))
            for step in sorted(steps_x & steps_y):
                for bench in ordered(data["benchmarks"]):
                    c = bootstrap(_per_seed_verdicts(data, [(t["trial"], step) for t in x["seeds"].values()], bench),
                                  _per_seed_verdicts(data, [(t["trial"], step) for t in y["seeds"].values()], bench))
                    if c:
                        out.append({"student": student, "a": x["label"], "b": y["label"], "benchmark": bench,
                                    "at": f"step {step}", **c})
    return out


def _range_cell(mean: float, low: float, high: float) -> str:
    return f"{pct(mean)} [{100 * low:.1f}–{100 * high:.1f}]"


def _delta_cell(c: dict[str, Any]) -> str:
    noise = " ~" if c["ci95_low"] <= 0 <= c["ci95_high"] else ""
    return f"{100 * c['delta']:+.1f}pp [{100 * c['ci95_low']:+.1f}, {100 * c['ci95_high']:+.1f}]{noise}"


def replicates_section(data: dict[str, Any], student: str) -> list[str]:
    """Markdown lines for one student's replicate groups (nothing when it has none)."""
    groups = [g for g in replicate_groups(data) if g["student"] == student]
    if not groups:
        return []
    benches = ordered(data["benchmarks"])
    names = [benchmark_info(b).display for b in benches]
    lines = ["### Replicates (trials that differ only in `training.seed`)", "",
             "Mean over seeds with the between-seed range [min–max] (what these seeds did, not an interval); "
             "differences carry a 95% seed x item bootstrap interval (each side's seeds and the shared items "
             f"resampled with replacement, {RESAMPLES:,} resamples); `~` marks an interval that contains 0.", "",
             f"![replicates](replicates-{student}.png)", ""]
    for g in groups:
        seeds = sorted(g["seeds"], key=str)
        lines += [f"#### {g['label']}: seeds {', '.join(map(str, seeds))}", ""]
        spreads = {b: {s["step"]: s for s in step_spread(g, b)} for b in benches}
        steps = sorted(set().union(*spreads.values()))
        body = []
        for step in steps:
            cells = [_range_cell(s["mean"], s["min"], s["max"]) if (s := spreads[b].get(step)) else "—"
                     for b in benches]
            body.append([str(step), *cells, str(max((spreads[b][step]["seeds"] for b in benches
                                                     if step in spreads[b]), default=0))])
        lines += table(["Step", *[f"{n} mean [range]" for n in names], "seeds"], body)
        body = []
        for b, name in zip(benches, names, strict=True):
            picks = best_per_seed(g, b)
            if not picks:
                continue
            mean, low, high = spread([p["accuracy"] for p in picks])
            body.append([f"Best {name}", *[f"{pct(p['accuracy'])} (s{p['step']})" for p in picks],
                         _range_cell(mean, low, high)])
        if body:
            lines += table(["Benchmark", *[f"seed {s}" for s in seeds], "mean [range]"], body)
    diffs = teacher_differences(data, groups)
    if diffs:
        body = [[f"{d['a']} − {d['b']}", d["at"], benchmark_info(d["benchmark"]).display, _delta_cell(d),
                 f"{d['seeds_a']} / {d['seeds_b']}", str(d["items"])] for d in diffs]
        lines += ["#### Teacher vs teacher over seeds and items", "",
                  *table(["Comparison", "At", "Benchmark", "A − B [95% seed x item bootstrap]", "seeds A / B",
                          "items"], body)]
    return lines


def replicates_json(data: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """The replicate summary for results.json: {"groups": per group and benchmark the per-step spread and the best
    per seed, "differences": the teacher-vs-teacher bootstrap differences}."""
    groups = replicate_groups(data)
    out: list[dict[str, Any]] = []
    for g in groups:
        out.append({"student": g["student"], "teacher": g["teacher"], "domain": g["domain"],
                    "others": dict(g["others"]), "seeds": sorted(g["seeds"], key=str),
                    "benchmarks": {b: {"steps": step_spread(g, b), "best_per_seed": best_per_seed(g, b)}
                                   for b in ordered(data["benchmarks"])}})
    return {"groups": out, "differences": teacher_differences(data, groups)}
