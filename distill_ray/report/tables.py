"""The seed's tables as Markdown lines: per-trial steps, the summary per student, teacher vs teacher per domain.

    from distill_ray.report.tables import trial_table, summary_table, data_source_table
    lines = trial_table(data, trial, base_scores)

Layout and column names follow the seed study (experiment 16/02): `Step | Samples | MATH-500 | MBPP+` with a `Base`
row; `Training Data | Best MATH-500 | MBPP+ at best MATH | Best MBPP+ | MATH at best MBPP` with a `Base` row;
`Data Source | Best MATH-500 | MBPP+ at best`; per teacher `Step | Math→MATH | Math→MBPP | Code→MATH | Code→MBPP`.
The math column is the sweep's math-domain benchmark and the code column its code benchmark, whatever their names (the
embedded default's mini-math / mini-code fill the same columns). Every accuracy carries its 95% Wilson interval in
brackets; the best score of a column is bold, as in the seed.

Not guaranteed: the seed-style "best" columns are optimistic (picked and reported on the same items); the columns
"picked on validation half" are the honest counterpart (see `analysis`).
"""

from __future__ import annotations

from typing import Any

from distill_ray.report.analysis import accuracy, columns, on_test_half, verdicts
from distill_ray.report.data import benchmark_info
from distill_ray.stats import wilson_interval


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def acc_cell(acc: float | None, low: float | None = None, high: float | None = None, bold: bool = False) -> str:
    if acc is None:
        return "—"
    text = f"**{pct(acc)}**" if bold else pct(acc)
    return text if low is None or high is None else f"{text} [{100 * low:.0f}–{100 * high:.0f}]"


def row_cell(row: dict | None, bench: str | None, bold: bool = False) -> str:
    if row is None or not bench or f"{bench}/accuracy" not in row:
        return "—"
    return acc_cell(row[f"{bench}/accuracy"], row.get(f"{bench}/ci95_low"), row.get(f"{bench}/ci95_high"), bold)


def score_cell(score: dict | None) -> str:
    if not score or not score.get("n"):
        return "—"
    return acc_cell(score["accuracy"], score.get("ci95_low"), score.get("ci95_high"))


def samples(n: int) -> str:
    """The seed writes samples in thousands: 5K, 25K (here also 1.6K for the toy runs)."""
    return f"{n / 1000:g}K" if n >= 1000 and n % 100 == 0 else f"{n:,}"


def leader(values: list[float]) -> float | None:
    """The value to bold in a column: its maximum, unless every value is the same (then nothing stands out)."""
    return max(values) if len({round(v, 12) for v in values}) > 1 else None


def is_top(value: float | None, top: float | None) -> bool:
    return value is not None and top is not None and abs(value - top) < 1e-12


def table(header: list[str], body: list[list[str]]) -> list[str]:
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *("| " + " | ".join(r) + " |" for r in body), ""]


def ordered(benchmarks: list[str]) -> list[str]:
    """Math column, code column, then any benchmark of neither domain."""
    cols = columns(benchmarks)
    first = [b for b in (cols["math"], cols["code"]) if b]
    return first + [b for b in benchmarks if b not in first]


def base_only_cell(data: dict, bench: str, scores: dict | None, **where: Any) -> str:
    """MBPP (base tests only): from the per-item base_status, else the score's base_correct, else —."""
    acc = accuracy(verdicts(data, bench, base_only=True, **where))
    if acc:
        return acc_cell(acc["accuracy"], acc["ci95_low"], acc["ci95_high"])
    score = (scores or {}).get(bench)
    if score and score.get("base_correct") is not None and score.get("n"):
        low, high = wilson_interval(score["base_correct"], score["n"])
        return acc_cell(score["base_correct"] / score["n"], low, high)
    return "—"


def cap_share(data: dict, benches: list[str], scores: dict | None, **where: Any) -> float | None:
    """Share of responses that stopped at max_new_tokens (finish_reason "length"); None when unrecorded."""
    if where.get("student") is not None:
        items = data["base_items"].get(where["student"], {})
    else:
        items = data["items"].get((where.get("trial"), int(where.get("step") or 0)), {})
    reasons = [i["finish_reason"] for b in benches for i in items.get(b, {}).values() if i["finish_reason"]]
    if reasons:
        return sum(r == "length" for r in reasons) / len(reasons)
    capped = [(s["length_capped"], s["n"] + s.get("errors", 0)) for b in benches
              if (s := (scores or {}).get(b)) and s.get("length_capped") is not None]
    total = sum(n for _, n in capped)
    return sum(c for c, _ in capped) / total if total else None


def trial_table(data: dict, trial: dict, base_scores: dict) -> list[str]:
    """Step | Samples | <math> | <code> [| MBPP (base only)] | train loss | cap hits, then the Base row."""
    benches = ordered(data["benchmarks"])
    base_only = [b for b in benches if benchmark_info(b).base_only]
    header = ["Step", "Samples", *[benchmark_info(b).display for b in benches],
              *[f"{benchmark_info(b).base_only} (base only)" for b in base_only], "train loss", "cap hits"]
    tops = {b: leader([r[f"{b}/accuracy"] for r in trial["rows"] if f"{b}/accuracy" in r]) for b in benches}
    body = []
    for r in trial["rows"]:
        where = {"trial": trial["trial"], "step": r["step"]}
        scores = data["eval_scores"].get((trial["trial"], int(r["step"])))
        cap = cap_share(data, benches, scores, **where)
        body.append([str(r["step"]), samples(int(r["samples"])),
                     *[row_cell(r, b, bold=is_top(r.get(f"{b}/accuracy"), tops[b])) for b in benches],
                     *[base_only_cell(data, b, scores, **where) for b in base_only],
                     f"{r['train_loss']:.3f}", pct(cap) if cap is not None else "—"])
    where = {"student": trial["student"]}
    cap = cap_share(data, benches, base_scores, **where)
    body.append(["Base", "—", *[score_cell(base_scores.get(b)) for b in benches],
                 *[base_only_cell(data, b, base_scores, **where) for b in base_only], "—",
                 pct(cap) if cap is not None else "—"])
    return table(header, body)


def _best_cell(rows: list[dict], bench: str | None, bold: bool) -> str:
    if not rows:
        return "—"
    steps = "/".join(f"s{r['step']}" for r in rows)
    return f"{row_cell(rows[0], bench, bold)} ({steps})"


def _at_best_cell(rows: list[dict], bench: str | None) -> str:
    cells = list(dict.fromkeys(row_cell(r, bench) for r in rows))
    return " / ".join(cells) if cells else "—"


def _honest_cell(h: dict | None) -> str:
    if not h:
        return "—"
    return f"{acc_cell(h['accuracy'], h['ci95_low'], h['ci95_high'])} (s{h['step']}, {h['n']} items)"


def summary_table(data: dict, summaries: list[dict], base_scores: dict, student: str) -> list[str]:
    """Training Data | Best <math> | <code> at best <math> | Best <code> | <math> at best <code> | honest picks."""
    cols = columns(data["benchmarks"])
    m, c = cols["math"], cols["code"]
    im, ic = benchmark_info(m or "math"), benchmark_info(c or "code")
    header = ["Training Data", f"Best {im.display}", f"{ic.display} at best {im.short}", f"Best {ic.display}",
              f"{im.short} at best {ic.short}", f"{im.display} picked on validation half",
              f"{ic.display} picked on validation half"]
    top = {d: leader([s["best"][d][0][f"{b}/accuracy"] for s in summaries if s["best"][d]]) for d, b in cols.items()}
    body = []
    for s in summaries:
        bm, bc = s["best"]["math"], s["best"]["code"]
        body.append([s["label"],
                     _best_cell(bm, m, bool(bm) and is_top(bm[0][f"{m}/accuracy"], top["math"])),
                     _at_best_cell(bm, c),
                     _best_cell(bc, c, bool(bc) and is_top(bc[0][f"{c}/accuracy"], top["code"])),
                     _at_best_cell(bc, m), _honest_cell(s["honest"]["math"]), _honest_cell(s["honest"]["code"])])
    honest_base = {d: on_test_half(data, verdicts(data, b, student=student), b) if b else None for d, b in cols.items()}
    body.append(["Base", score_cell(base_scores.get(m)), score_cell(base_scores.get(c)),
                 score_cell(base_scores.get(c)), score_cell(base_scores.get(m)),
                 *[f"{acc_cell(h['accuracy'], h['ci95_low'], h['ci95_high'])} ({h['n']} items)" if h else "—"
                   for h in (honest_base["math"], honest_base["code"])]])
    return table(header, body)


def data_source_table(data: dict, summaries: list[dict], base_scores: dict, domain: str) -> list[str]:
    """Data Source | Best <in-domain> | <other> at best: each teacher's best in-domain checkpoint, and the base."""
    cols = columns(data["benchmarks"])
    other = "code" if domain == "math" else "math"
    b_in, b_out = cols.get(domain), cols.get(other)
    if not b_in:
        return []
    mine = [s for s in summaries if s["domain"] == domain]
    header = ["Data Source", f"Best {benchmark_info(b_in).display}",
              f"{benchmark_info(b_out or other).display} at best"]
    top = leader([s["best"][domain][0][f"{b_in}/accuracy"] for s in mine if s["best"][domain]])
    body = []
    for s in mine:
        rows = s["best"][domain]
        label = s["label"].removesuffix(f" {domain}").replace(f" {domain} (", " (")
        if not rows:
            body.append([label, "—", "—"])
            continue
        cell = row_cell(rows[0], b_in, is_top(rows[0][f"{b_in}/accuracy"], top))
        steps = "/".join(str(r["step"]) for r in rows)
        body.append([label, f"{cell} (step {steps})", _at_best_cell(rows, b_out)])
    body.append(["Base (no FT)", score_cell(base_scores.get(b_in)), score_cell(base_scores.get(b_out))])
    return table(header, body)


def cross_domain_table(data: dict, student_trials: list[dict], teacher: str) -> list[str]:
    """The seed's "Complete R1 baselines": Step | Math→MATH | Math→MBPP | Code→MATH | Code→MBPP for one teacher."""
    cols = columns(data["benchmarks"])
    benches = [b for b in (cols["math"], cols["code"]) if b]
    mine = {t["domain"]: t for t in student_trials if t["teacher"] == teacher and not t["extras"]}
    domains = [d for d in ("math", "code") if d in mine]
    if len(domains) < 2 or not benches:
        return []
    header = ["Step", *[f"{d.capitalize()}→{benchmark_info(b).short}" for d in domains for b in benches]]
    by_step = {d: {r["step"]: r for r in mine[d]["rows"]} for d in domains}
    steps = sorted(set().union(*(by_step[d] for d in domains)))
    body = [[str(step), *[row_cell(by_step[d].get(step), b) for d in domains for b in benches]] for step in steps]
    return table(header, body)


__all__ = ["acc_cell", "cross_domain_table", "data_source_table", "ordered", "pct", "summary_table", "table",
           "trial_table"]
