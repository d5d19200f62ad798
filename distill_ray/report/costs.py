"""Cost against gain: what a trace and a point of benchmark gain cost each teacher.

    from distill_ray.report.costs import trace_costs, gain_costs, costs_section
    for c in trace_costs(data): print(c["teacher"], c["domain"], c["usd_per_verified"])

Per (teacher, domain), from `traces/<teacher>/<domain>/done.json`: dollars and tokens (prompt + completion, as the
provider reported them) per generated trace (a request that returned a trace, `generation.ok`, else the judged count)
and per verified trace (passed the verifier). Per (student, teacher, domain): the in-domain benchmark's best
checkpoint minus the base model, in points (percentage points), and points per 1,000 dollars of that teacher's traces
in that domain, with the 95% interval carried through (the dollars are a known constant, so the interval of the gain
divided by them is the interval of the ratio). With replicates (`report.replicates`) the gain is the mean over seeds
of each seed's best minus base, its interval the seed x item bootstrap; without, the paired difference with
Newcombe's interval. Dollars per point is printed only where the gain is positive (its interval would cross infinity).

Not guaranteed: the best checkpoint is picked on the items it is scored on (optimistic, as the seed's best columns);
a teacher's traces serve every student of the sweep, so dollars per point is per student, not a share of the bill;
generation cost includes requests that failed and were paid (the provider bills them).
"""

from __future__ import annotations

from typing import Any

from distill_ray.report.analysis import best, columns, compare, trials, verdicts
from distill_ray.report.data import benchmark_info
from distill_ray.report.replicates import best_per_seed, bootstrap, replicate_groups
from distill_ray.report.tables import table


def _ratio(numerator: float, denominator: float | int | None) -> float | None:
    return numerator / denominator if denominator else None


def trace_costs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (teacher, domain): cost, tokens, generated and verified traces, and dollars/tokens per trace."""
    out = []
    for t in sorted(data["traces"], key=lambda t: (str(t.get("teacher", "")), str(t.get("domain", "")))):
        gen, st = t.get("generation") or {}, t.get("statistics") or {}
        cost = float(gen.get("cost_usd") or 0.0)
        tokens = int(gen.get("prompt_tokens") or 0) + int(gen.get("completion_tokens") or 0)
        generated = int(gen["ok"]) if gen.get("ok") is not None else int(st.get("n") or 0)
        verified = int(st.get("passed") or 0)
        out.append({"teacher": t.get("teacher"), "domain": t.get("domain"), "cost_usd": cost, "tokens": tokens,
                    "generated": generated, "verified": verified,
                    "usd_per_generated": _ratio(cost, generated), "usd_per_verified": _ratio(cost, verified),
                    "tokens_per_generated": _ratio(tokens, generated),
                    "tokens_per_verified": _ratio(tokens, verified)})
    return out


def _gain(data: dict[str, Any], student: str, picks: list[tuple[str, int]], bench: str) -> dict[str, Any] | None:
    """Best minus base in fractions: seed x item bootstrap over several picks, Newcombe's paired interval for one."""
    base = verdicts(data, bench, student=student)
    mine = [verdicts(data, bench, trial=trial, step=step) for trial, step in picks]
    if base is None or not mine or any(v is None for v in mine):
        return None
    if len(mine) == 1:
        c = compare(mine[0], base)
        return None if c is None else {"delta": c["delta"], "ci95_low": c["ci95_low"], "ci95_high": c["ci95_high"],
                                       "method": "paired (Newcombe method 10)", "seeds": 1}
    c = bootstrap(mine, [base])  # type: ignore[arg-type]
    return None if c is None else {"delta": c["delta"], "ci95_low": c["ci95_low"], "ci95_high": c["ci95_high"],
                                   "method": "seed x item bootstrap", "seeds": len(mine)}


def gain_costs(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per (student, teacher, domain[, other axes]): in-domain best minus base, and points per $1,000 with its CI."""
    cols = columns(data["benchmarks"])
    cost = {(c["teacher"], c["domain"]): c["cost_usd"] for c in trace_costs(data)}
    units: list[dict[str, Any]] = []
    grouped: set[str] = set()
    for g in replicate_groups(data):
        bench = cols.get(g["domain"])
        if bench:
            picks = [(p["trial"], p["step"]) for p in best_per_seed(g, bench)]
            units.append({**{k: g[k] for k in ("student", "teacher", "domain", "label")}, "bench": bench,
                          "picks": picks})
        grouped.update(t["trial"] for t in g["seeds"].values())
    for t in trials(data):
        bench = cols.get(t["domain"])
        top = best(t["rows"], bench) if bench and t["trial"] not in grouped else []
        if top:
            units.append({**{k: t[k] for k in ("student", "teacher", "domain", "label")}, "bench": bench,
                          "picks": [(t["trial"], int(top[0]["step"]))]})
    out = []
    for u in units:
        gain = _gain(data, u["student"], u["picks"], u["bench"])
        if gain is None:
            continue
        usd = cost.get((u["teacher"], u["domain"]))
        points = {k: 100 * gain[k] for k in ("delta", "ci95_low", "ci95_high")}
        per_k = {k: _ratio(1000 * v, usd) for k, v in points.items()}
        out.append({"student": u["student"], "teacher": u["teacher"], "domain": u["domain"], "label": u["label"],
                    "benchmark": u["bench"], "steps": [step for _, step in u["picks"]], "seeds": gain["seeds"],
                    "method": gain["method"], "gain_points": points["delta"], "gain_ci95": [points["ci95_low"],
                                                                                           points["ci95_high"]],
                    "cost_usd": usd, "points_per_1000_usd": per_k["delta"],
                    "points_per_1000_usd_ci95": [per_k["ci95_low"], per_k["ci95_high"]],
                    "usd_per_point": _ratio(usd, points["delta"]) if usd and points["delta"] > 0 else None})
    return out


def _money(value: float | None, digits: int = 4) -> str:
    return "—" if value is None else f"${value:.{digits}f}"


def _number(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def costs_section(data: dict[str, Any]) -> list[str]:
    """Markdown: dollars per trace per teacher, and points of gain per $1,000 per student."""
    traces = trace_costs(data)
    if not traces:
        return []
    lines = ["## Cost against gain", "",
             *table(["Teacher", "Domain", "Cost (USD)", "Tokens", "Generated", "Verified", "$ / generated",
                     "$ / verified", "Tokens / generated", "Tokens / verified"],
                    [[str(c["teacher"]), str(c["domain"]), _money(c["cost_usd"]), _number(c["tokens"]),
                      str(c["generated"]), str(c["verified"]), _money(c["usd_per_generated"], 6),
                      _money(c["usd_per_verified"], 6), _number(c["tokens_per_generated"]),
                      _number(c["tokens_per_verified"])] for c in traces])]
    gains = gain_costs(data)
    if gains:
        body = [[g["student"], g["label"], benchmark_info(g["benchmark"]).display,
                 "/".join(f"s{s}" for s in g["steps"]),
                 f"{g['gain_points']:+.1f} [{g['gain_ci95'][0]:+.1f}, {g['gain_ci95'][1]:+.1f}]",
                 _money(g["cost_usd"]),
                 "—" if g["points_per_1000_usd"] is None else
                 f"{g['points_per_1000_usd']:+,.1f} [{g['points_per_1000_usd_ci95'][0]:+,.1f}, "
                 f"{g['points_per_1000_usd_ci95'][1]:+,.1f}]",
                 _money(g["usd_per_point"]), g["method"]] for g in gains]
        lines += ["Gain: the in-domain benchmark's best checkpoint (per seed, where there are replicates) minus the "
                  "base model, in points, with its 95% interval; per $1,000 of that teacher's traces in that domain "
                  "(the interval divided by the same dollars). Best checkpoints are picked on the items they are "
                  "scored on, so gains are optimistic.", "",
                  *table(["Student", "Training data", "Benchmark", "Best step(s)", "Gain (points) [95%]",
                          "Traces cost", "Points per $1,000 [95%]", "$ per point", "Interval"], body)]
    return lines
