"""The study's report, from an experiment directory (finished or still running): Markdown tables, PNG curves, CSV/JSON.

    distill-ray report runs/local            # writes runs/local/report.md, curves-*.png, results.csv, results.json

Tables follow the seed study's shapes: per (teacher, domain) a Step | Samples | <benchmarks> table with the base model
as its last row; a summary per student (best in-domain score, the cross-domain score at that checkpoint, and the
reverse); deltas against the base and between teachers. Every accuracy carries a 95% Wilson interval, and every delta
a 95% Newcombe interval; a delta whose interval contains 0 is marked `~` (within noise). The report reads only files:
`trials/*/results.jsonl`, `base/*/scores.json`, `traces/*/*/done.json`; it never needs Ray or Tune.

Not guaranteed: "best checkpoint" is chosen on the same benchmark it is reported on, as in the seed, so best-of-N
scores are optimistic; the summary says so.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from typing import Any

from distill_ray.stats import difference_interval

DOMAIN_OF_BENCHMARK = {"mini-math": "math", "math500": "math", "mini-code": "code", "mbppplus": "code"}
DISPLAY = {"mini-math": "mini-math", "math500": "MATH-500", "mini-code": "mini-code", "mbppplus": "MBPP+"}


def _read_jsonl(path: str) -> list[dict]:
    with open(path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def load_experiment(exp_dir: str) -> dict[str, Any]:
    """All numbers of an experiment: trial rows, base scores and trace statistics."""
    if not os.path.isdir(exp_dir):
        raise FileNotFoundError(f"{exp_dir}: no such experiment directory")
    rows: list[dict] = []
    for path in sorted(glob.glob(os.path.join(exp_dir, "trials", "*", "results.jsonl"))):
        rows.extend(_read_jsonl(path))
    base: dict[str, dict[str, dict]] = {}
    for path in sorted(glob.glob(os.path.join(exp_dir, "base", "*", "scores.json"))):
        student = os.path.basename(os.path.dirname(path))
        with open(path, encoding="utf-8") as handle:
            base[student] = {s["benchmark"]: s for s in json.load(handle)}
    traces: list[dict] = []
    for path in sorted(glob.glob(os.path.join(exp_dir, "traces", "*", "*", "done.json"))):
        with open(path, encoding="utf-8") as handle:
            traces.append(json.load(handle))
    benchmarks: list[str] = []
    for row in rows:
        for key in row:
            if key.endswith("/accuracy") and key.split("/")[0] not in benchmarks:
                benchmarks.append(key.split("/")[0])
    for scores in base.values():
        for name in scores:
            if name not in benchmarks:
                benchmarks.append(name)
    return {"rows": rows, "base": base, "traces": traces, "benchmarks": benchmarks}


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _cell(row: dict, bench: str) -> str:
    if f"{bench}/accuracy" not in row:
        return "—"
    return (f"{_pct(row[f'{bench}/accuracy'])} "
            f"[{100 * row[f'{bench}/ci95_low']:.0f}–{100 * row[f'{bench}/ci95_high']:.0f}]")


def _base_cell(score: dict | None) -> str:
    if not score:
        return "—"
    return f"{_pct(score['accuracy'])} [{100 * score['ci95_low']:.0f}–{100 * score['ci95_high']:.0f}]"


def _count(row: dict, bench: str) -> tuple[int, int]:
    n = int(row.get(f"{bench}/n", 0))
    return round(row.get(f"{bench}/accuracy", 0.0) * n), n


def _delta(c1: int, n1: int, c2: int, n2: int) -> str:
    if not n1 or not n2:
        return "—"
    d, low, high = difference_interval(c1, n1, c2, n2)
    noise = " ~" if low <= 0 <= high else ""
    return f"{100 * d:+.1f}pp [{100 * low:+.0f}, {100 * high:+.0f}]{noise}"


def _benchmark_for(domain: str, benchmarks: list[str]) -> str | None:
    return next((b for b in benchmarks if DOMAIN_OF_BENCHMARK.get(b) == domain), None)


def _groups(rows: list[dict]) -> dict[tuple[str, str, str], list[dict]]:
    groups: dict[tuple[str, str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row["student"], row["teacher"], row["trial"]), []).append(row)
    for key in groups:
        groups[key].sort(key=lambda r: r["step"])
    return groups


def _best(rows: list[dict], bench: str) -> dict | None:
    scored = [r for r in rows if f"{bench}/accuracy" in r]
    # the earliest checkpoint wins a tie, as a reader would pick the cheaper one
    return max(scored, key=lambda r: (r[f"{bench}/accuracy"], -r["step"])) if scored else None


def summary_rows(data: dict[str, Any]) -> list[dict]:
    """Per trial: best in-domain checkpoint and the other domain's score there, and the reverse."""
    out = []
    benchmarks = data["benchmarks"]
    for (student, teacher, trial), rows in sorted(_groups(data["rows"]).items()):
        domain = rows[0]["domain"]
        other = "code" if domain == "math" else "math"
        b_in, b_out = _benchmark_for(domain, benchmarks), _benchmark_for(other, benchmarks)
        best_in = _best(rows, b_in) if b_in else None
        best_out = _best(rows, b_out) if b_out else None
        out.append({"student": student, "teacher": teacher, "trial": trial, "domain": domain,
                    "in_benchmark": b_in, "out_benchmark": b_out, "best_in": best_in, "best_out": best_out})
    return out


def _plot(data: dict[str, Any], exp_dir: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    students = sorted({r["student"] for r in data["rows"]} | set(data["base"]))
    for student in students:
        fig, axes = plt.subplots(1, len(data["benchmarks"]) or 1, figsize=(5 * max(1, len(data["benchmarks"])), 3.6),
                                 squeeze=False)
        for ax, bench in zip(axes[0], data["benchmarks"], strict=False):
            for (s, _teacher, trial), rows in sorted(_groups(data["rows"]).items()):
                if s != student:
                    continue
                points = [(r["step"], r[f"{bench}/accuracy"], r[f"{bench}/ci95_low"], r[f"{bench}/ci95_high"])
                          for r in rows if f"{bench}/accuracy" in r]
                if not points:
                    continue
                steps, acc, low, high = zip(*points, strict=True)
                label = f"{rows[0]['teacher']} · {rows[0]['domain']}" + ("" if trial.count("_") <= 4 else f" ({trial})")
                ax.plot(steps, [100 * a for a in acc], marker="o", label=label)
                ax.fill_between(steps, [100 * v for v in low], [100 * v for v in high], alpha=0.12)
            base = data["base"].get(student, {}).get(bench)
            if base:
                ax.axhline(100 * base["accuracy"], color="black", linestyle="--", linewidth=1, label="base")
            ax.set_title(f"{student} — {DISPLAY.get(bench, bench)}")
            ax.set_xlabel("step")
            ax.set_ylabel("accuracy (%)")
            ax.set_ylim(-2, 102)
            ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(exp_dir, f"curves-{student}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def _write_tables(data: dict[str, Any], exp_dir: str) -> None:
    rows = data["rows"]
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    with open(os.path.join(exp_dir, "results.csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    with open(os.path.join(exp_dir, "results.json"), "w", encoding="utf-8") as handle:
        json.dump({"trials": rows, "base": data["base"], "traces": data["traces"]}, handle, indent=1)


def write_report(exp_dir: str) -> str:
    """Write report.md (with curves, CSV and JSON beside it) for an experiment directory; returns the report path."""
    data = load_experiment(exp_dir)
    benches = data["benchmarks"]
    lines = [f"# Distillation report — `{os.path.basename(os.path.abspath(exp_dir))}`", ""]
    lines.append(f"{len({r['trial'] for r in data['rows']})} trials with results, {len(data['rows'])} evaluated "
                 f"checkpoints, base models: {', '.join(sorted(data['base'])) or 'none'}. Accuracies are shown with "
                 "95% Wilson intervals in brackets; deltas with 95% Newcombe intervals, `~` marks a delta within "
                 "noise (its interval contains 0).")
    lines.append("")
    students = sorted({r["student"] for r in data["rows"]} | set(data["base"]))
    groups = _groups(data["rows"])
    summaries = summary_rows(data)
    for student in students:
        lines += [f"## {student}", ""]
        if os.path.exists(os.path.join(exp_dir, f"curves-{student}.png")) or data["rows"]:
            lines += [f"![learning curves](curves-{student}.png)", ""]
        base = data["base"].get(student, {})
        if base:
            lines += ["| Base model | " + " | ".join(DISPLAY.get(b, b) for b in benches) + " |",
                      "|---|" + "---|" * len(benches),
                      "| accuracy [95%] | " + " | ".join(_base_cell(base.get(b)) for b in benches) + " |", ""]
        for (s, teacher, trial), rows in sorted(groups.items()):
            if s != student:
                continue
            lines += [f"### {teacher} traces, {rows[0]['domain']} (`{trial}`)", ""]
            header = ["Step", "Samples", *[DISPLAY.get(b, b) for b in benches], "train loss"]
            lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            for r in rows:
                lines.append("| " + " | ".join([str(r["step"]), f"{r['samples']:,}", *[_cell(r, b) for b in benches],
                                                f"{r['train_loss']:.3f}"]) + " |")
            lines.append("| Base | — | " + " | ".join(_base_cell(base.get(b)) for b in benches) + " | — |")
            lines.append("")
        mine = [s for s in summaries if s["student"] == student]
        if mine:
            lines += ["### Summary", "",
                      "| Training data | Best in-domain | Other domain at best | Best other domain | In-domain at best "
                      "other | vs base (best in-domain) |", "|---|---|---|---|---|---|"]
            for s in mine:
                b_in, b_out, best_in, best_out = s["in_benchmark"], s["out_benchmark"], s["best_in"], s["best_out"]
                vs_base = "—"
                if best_in and base.get(b_in):
                    c, n = _count(best_in, b_in)
                    vs_base = _delta(c, n, base[b_in]["correct"], base[b_in]["n"])
                lines.append("| " + " | ".join([
                    f"{s['teacher']} {s['domain']}",
                    f"{_cell(best_in, b_in)} (s{best_in['step']}, {DISPLAY.get(b_in, b_in)})" if best_in else "—",
                    _cell(best_in, b_out) if best_in and b_out else "—",
                    f"{_cell(best_out, b_out)} (s{best_out['step']}, {DISPLAY.get(b_out, b_out)})" if best_out else "—",
                    _cell(best_out, b_in) if best_out and b_in else "—",
                    vs_base]) + " |")
            lines.append("| Base | " + " | ".join(
                _base_cell(base.get(b)) for b in [mine[0]["in_benchmark"], mine[0]["out_benchmark"]] * 2
                if b) + " | — |")
            lines += ["", "Best checkpoints are picked on the benchmark they are reported on (as in the seed), so "
                          "'best' scores are optimistic by the usual best-of-N selection effect.", ""]
            teachers = sorted({s["teacher"] for s in mine})
            if len(teachers) >= 2:
                lines += ["### Teacher vs teacher (best in-domain checkpoint)", "",
                          f"| Domain | {teachers[0]} | {teachers[1]} | {teachers[0]} − {teachers[1]} |",
                          "|---|---|---|---|"]
                for domain in sorted({s["domain"] for s in mine}):
                    a = next((s for s in mine if s["teacher"] == teachers[0] and s["domain"] == domain), None)
                    b = next((s for s in mine if s["teacher"] == teachers[1] and s["domain"] == domain), None)
                    if not (a and b and a["best_in"] and b["best_in"]):
                        continue
                    bench = a["in_benchmark"]
                    ca, na = _count(a["best_in"], bench)
                    cb, nb = _count(b["best_in"], bench)
                    lines.append(f"| {domain} ({DISPLAY.get(bench, bench)}) | {_cell(a['best_in'], bench)} | "
                                 f"{_cell(b['best_in'], bench)} | {_delta(ca, na, cb, nb)} |")
                lines.append("")
        format_rows = [r for (s, _t, _n), rs in sorted(groups.items()) if s == student for r in rs]
        if format_rows or base:
            lines += ["### Format failures (no `\\boxed{}` / no python block), share of items", "",
                      "| Model | Step | " + " | ".join(DISPLAY.get(b, b) for b in benches) + " |",
                      "|" + "---|" * (len(benches) + 2)]
            if base:
                lines.append("| base | 0 | " + " | ".join(
                    _pct(base[b]["format_failures"] / base[b]["n"]) if base.get(b) and base[b]["n"] else "—"
                    for b in benches) + " |")
            for r in format_rows:
                lines.append(f"| {r['teacher']} {r['domain']} | {r['step']} | " + " | ".join(
                    _pct(r.get(f"{b}/format_failure_rate", 0.0)) for b in benches) + " |")
            lines.append("")
    if data["traces"]:
        lines += ["## Teacher traces", "",
                  "| Teacher | Domain | Requests paid | Verified | Pass rate [95%] | Mean tokens | p50 | p90 | "
                  "Teacher cut (length) | Training examples cut at max_length | Cost (USD) |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for t in sorted(data["traces"], key=lambda t: (t["teacher"], t["domain"])):
            st, gen = t.get("statistics", {}), t.get("generation", {})
            trained = next((r for r in data["rows"] if r["teacher"] == t["teacher"] and r["domain"] == t["domain"]
                            and r.get("examples")), None)
            cut = (f"{_pct(trained['truncated_examples'] / trained['examples'])} of {trained['examples']}"
                   if trained else "—")
            ci = st.get("ci95") or [float("nan"), float("nan")]
            lines.append(
                f"| {t['teacher']} | {t['domain']} | {gen.get('paid', '—')} | {st.get('n', 0)} | "
                f"{_pct(st.get('pass_rate', 0.0))} [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}] | "
                f"{st.get('tokens_mean', 0):.0f} | {st.get('tokens_p50', 0):.0f} | {st.get('tokens_p90', 0):.0f} | "
                f"{_pct(st.get('truncation_rate', 0.0))} | {cut} | {gen.get('cost_usd', 0.0):.4f} |")
        lines.append("")
    lines += ["All numbers: `results.csv`, `results.json` in this folder.", ""]
    _plot(data, exp_dir)
    _write_tables(data, exp_dir)
    path = os.path.join(exp_dir, "report.md")
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines))
    os.replace(tmp, path)
    return path
