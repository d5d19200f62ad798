"""report.md: the seed's tables, paired comparisons, what each response was, teacher traces; CSV/JSON and PNGs beside.

    from distill_ray.report import write_report
    write_report("runs/local")   # writes report.md, curves-<student>.png, results.csv, results.json; returns the path

Sections per student: one `Step | Samples | ...` table per trial with its paired changes (vs base, vs previous
checkpoint), the summary table, `Data Source` per domain, the deltas the seed's takeaways quote (vs base, vs the other
teacher), teacher vs teacher at each step, and format failures with the share of responses cut at max_new_tokens.
Then the teacher traces (pass rates, lengths, truncation, generation failures). Every file is written only after all
inputs were read and checked, each atomically.

Not guaranteed: a comparison row exists only where both sides have per-item verdicts (`responses.jsonl`).
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import os
from typing import Any

from distill_ray import experiment as ex
from distill_ray.files import write_text
from distill_ray.problems.audit import contamination_section
from distill_ray.report.analysis import SPLIT_SEED, columns, compare, summary_rows, trials, verdicts
from distill_ray.report.data import benchmark_info, contamination_audits, load_experiment
from distill_ray.report.plots import plot_curves
from distill_ray.report.tables import (
    cap_share,
    cross_domain_table,
    data_source_table,
    ordered,
    pct,
    summary_table,
    table,
    trial_table,
)

METHOD = ("Accuracies carry 95% Wilson intervals in brackets. Differences between two models are paired: both are "
          "scored on the same items, which are matched by `problem_id` within a benchmark; an item missing from "
          "either side or judged `error` on either side is dropped from that comparison (the `paired items` count "
          "says how many remain). Each difference carries a 95% interval by Newcombe's method 10 for paired "
          "proportions and the two-sided exact McNemar test (binomial test of the discordant items against 1/2); "
          "`~` marks a difference within noise: its interval contains 0 or McNemar's p is at least 0.05. "
          "\"Best\" columns pick the checkpoint on the items they report, as the seed does, so they are optimistic; "
          "the \"picked on validation half\" columns split each benchmark's items in two halves (ordered by "
          "sha256 of `seed:benchmark:problem_id`, seed "
          f"{SPLIT_SEED}), pick the checkpoint on one half and report it on the other.")


def delta_cell(c: dict[str, Any] | None) -> str:
    if c is None:
        return "—"
    noise = " ~" if c["ci95_low"] <= 0 <= c["ci95_high"] or c["p"] >= 0.05 else ""
    p = "p<0.001" if c["p"] < 0.001 else f"p={c['p']:.3f}"
    return (f"{100 * c['delta']:+.1f}pp [{100 * c['ci95_low']:+.1f}, {100 * c['ci95_high']:+.1f}] {p}{noise}")


class Comparisons:
    """Collects every paired comparison the report prints, for results.json."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def add(self, kind: str, student: str, a: str, b: str, bench: str, c: dict | None) -> dict | None:
        if c is not None:
            self.rows.append({"kind": kind, "student": student, "a": a, "b": b, "benchmark": bench, **c})
        return c


def _checkpoint_changes(data: dict, t: dict, log: Comparisons) -> list[str]:
    benches = ordered(data["benchmarks"])
    names = [benchmark_info(b).display for b in benches]
    header = ["Step", *[f"{n} − base" for n in names], *[f"{n} − previous" for n in names]]
    body, previous = [], None
    for r in t["rows"]:
        here = f"{t['trial']}@{r['step']}"
        vs_base = [log.add("checkpoint-vs-base", t["student"], here, "base", b, compare(
            verdicts(data, b, trial=t["trial"], step=r["step"]), verdicts(data, b, student=t["student"])))
            for b in benches]
        vs_prev = [log.add("checkpoint-vs-previous", t["student"], here, f"{t['trial']}@{previous}", b, compare(
            verdicts(data, b, trial=t["trial"], step=r["step"]), verdicts(data, b, trial=t["trial"], step=previous)))
            if previous is not None else None for b in benches]
        body.append([str(r["step"]), *map(delta_cell, vs_base), *map(delta_cell, vs_prev)])
        previous = r["step"]
    return ["Paired changes (A − B, 95% paired interval, exact McNemar p):", "", *table(header, body)]


def _takeaways(data: dict, student: str, summaries: list[dict], log: Comparisons) -> list[str]:
    cols = columns(data["benchmarks"])
    header = ["Comparison", "Benchmark", "A", "B", "A − B [95% paired CI], McNemar p", "A only / B only right",
              "paired items"]
    body = []

    def line(kind: str, label: str, a: tuple, b: tuple, bench: str | None) -> None:
        if not bench:
            return
        c = log.add(kind, student, a[1], b[1], bench,
                    compare(verdicts(data, bench, **a[0]), verdicts(data, bench, **b[0])))
        if c is None:
            body.append([label, benchmark_info(bench).display, "—", "—", "—", "—", "—"])
            return
        body.append([label, benchmark_info(bench).display, pct(c["a_correct"] / c["n"]), pct(c["b_correct"] / c["n"]),
                     delta_cell(c), f"{c['a_only']} / {c['b_only']}", str(c["n"])])

    base = ({"student": student}, "base")
    for s in summaries:
        top = s["best"].get(s["domain"]) or []
        if not top:
            continue
        b_in, b_out = cols[s["domain"]], cols["code" if s["domain"] == "math" else "math"]
        me = ({"trial": s["trial"], "step": top[0]["step"]}, f"{s['trial']}@{top[0]['step']}")
        short = benchmark_info(b_in).short
        line("best-vs-base", f"{s['label']} best {short} (s{top[0]['step']}) − base", me, base, b_in)
        line("best-vs-base", f"{s['label']} at best {short} (s{top[0]['step']}) − base", me, base, b_out)
    groups: dict[tuple, list[dict]] = {}
    for s in summaries:
        groups.setdefault((s["domain"], s["extras"]), []).append(s)
    for (domain, _), group in groups.items():
        b_in, b_out = cols.get(domain), cols["code" if domain == "math" else "math"]
        for x, y in itertools.combinations(group, 2):
            bx, by = x["best"].get(domain), y["best"].get(domain)
            if not (bx and by):
                continue
            a = ({"trial": x["trial"], "step": bx[0]["step"]}, f"{x['trial']}@{bx[0]['step']}")
            b = ({"trial": y["trial"], "step": by[0]["step"]}, f"{y['trial']}@{by[0]['step']}")
            label = f"{x['label']} best (s{bx[0]['step']}) − {y['label']} best (s{by[0]['step']})"
            line("teacher-vs-teacher-best", label, a, b, b_in)
            line("teacher-vs-teacher-best", label.replace(" best (", " at best ("), a, b, b_out)
    if not body:
        return []
    return ["### Deltas (the seed's takeaways, paired)", "", *table(header, body)]


def _teacher_steps(data: dict, student: str, ts: list[dict], log: Comparisons) -> list[str]:
    benches = ordered(data["benchmarks"])
    lines: list[str] = []
    groups: dict[tuple, list[dict]] = {}
    for t in ts:
        groups.setdefault((t["domain"], t["extras"]), []).append(t)
    for group in groups.values():
        for x, y in itertools.combinations(group, 2):
            steps = sorted({r["step"] for r in x["rows"]} & {r["step"] for r in y["rows"]})
            if not steps:
                continue
            header = ["Step", *[f"{benchmark_info(b).display}: {x['teacher']} − {y['teacher']}" for b in benches]]
            body = [[str(step), *[delta_cell(log.add(
                "teacher-vs-teacher-step", student, f"{x['trial']}@{step}", f"{y['trial']}@{step}", b, compare(
                    verdicts(data, b, trial=x["trial"], step=step), verdicts(data, b, trial=y["trial"], step=step))))
                for b in benches]] for step in steps]
            lines += [f"### {x['label']} vs {y['label']}, same step", "", *table(header, body)]
    return lines


def _responses_table(data: dict, student: str, ts: list[dict], base: dict) -> list[str]:
    benches = ordered(data["benchmarks"])
    header = ["Model", "Step"]
    for b in benches:
        header += [f"{benchmark_info(b).display} format failures", f"{benchmark_info(b).display} cap hits"]

    def cells(rates: list[float | None], caps: list[float | None]) -> list[str]:
        return [x for r, c in zip(rates, caps, strict=True) for x in
                (pct(r) if r is not None else "—", pct(c) if c is not None else "—")]

    body = []
    if base:
        rates = [base[b]["format_failures"] / base[b]["n"] if base.get(b) and base[b].get("n") else None
                 for b in benches]
        body.append(["base", "0", *cells(rates, [cap_share(data, [b], base, student=student) for b in benches])])
    for t in ts:
        for r in t["rows"]:
            scores = data["eval_scores"].get((t["trial"], int(r["step"])))
            body.append([t["label"], str(r["step"]), *cells(
                [r.get(f"{b}/format_failure_rate") for b in benches],
                [cap_share(data, [b], scores, trial=t["trial"], step=r["step"]) for b in benches])])
    if not body:
        return []
    return ["### What each response was", "",
            "Format failures: no answer in the expected format (no `\\boxed{}`, empty box, no python block, reasoning "
            "never closed), counted as wrong. Cap hits: responses that stopped at `max_new_tokens` "
            "(finish reason `length`); — where the experiment did not record finish reasons.", "",
            *table(header, body)]


def _traces(data: dict) -> list[str]:
    if not data["traces"]:
        return []
    header = ["Teacher", "Domain", "Requests paid", "Verified", "Pass rate [95%]", "Mean tokens", "p50", "p90",
              "Teacher cut (length)", "Training examples cut at max_length", "Cost (USD)"]
    body, failures = [], []
    for t in sorted(data["traces"], key=lambda t: (t.get("teacher", ""), t.get("domain", ""))):
        st, gen = t.get("statistics", {}), t.get("generation", {})
        trained = next((r for r in data["rows"] if r["teacher"] == t.get("teacher") and r["domain"] == t.get("domain")
                        and r.get("examples")), None)
        cut = (f"{pct(trained.get('truncated_examples', 0) / trained['examples'])} of {trained['examples']}"
               if trained else "—")
        ci = st.get("ci95") or [float("nan"), float("nan")]
        body.append([str(t.get("teacher")), str(t.get("domain")), str(gen.get("paid", "—")), str(st.get("n", 0)),
                     f"{pct(st.get('pass_rate', 0.0))} [{100 * ci[0]:.0f}–{100 * ci[1]:.0f}]",
                     f"{st.get('tokens_mean', 0):.0f}", f"{st.get('tokens_p50', 0):.0f}",
                     f"{st.get('tokens_p90', 0):.0f}", pct(st.get("truncation_rate", 0.0)), cut,
                     f"{gen.get('cost_usd', 0.0):.4f}"])
        for reason, count in sorted((gen.get("failure_reasons") or {}).items()):
            failures.append([str(t.get("teacher")), str(t.get("domain")), str(reason), str(count)])
    lines = ["## Teacher traces", "", *table(header, body)]
    if failures:
        lines += ["### Generation failures (requests that returned no usable trace)", "",
                  *table(["Teacher", "Domain", "Reason", "Requests"], failures)]
    return lines


def _problems(data: dict) -> list[str]:
    body = []
    for domain, summary in sorted(data.get("problems", {}).items()):
        dropped = summary.get("dropped") or {}
        reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(dropped.items()) if count) or "none"
        body.append([domain, str(summary.get("rows_read", "—")), str(summary.get("kept", "—")), reasons])
    return ["## Training problems", "", *table(["Domain", "Rows read", "Kept", "Dropped"], body)] if body else []


def render(data: dict[str, Any], name: str, log: Comparisons, audit: list[str] | None = None) -> list[str]:
    """The report's Markdown lines; `audit` is the decontamination section (`problems.audit`), placed after problems."""
    all_trials = trials(data)
    summaries = summary_rows(data)
    lines = [f"# Distillation report — `{name}`", "",
             f"{len(all_trials)} trials with results, {len(data['rows'])} evaluated checkpoints, base models: "
             f"{', '.join(sorted(data['base'])) or 'none'}.", "", METHOD, ""]
    if data["rows"] and not data["items"]:
        lines += ["Per-item verdicts (`eval/step-*/responses.jsonl`) were not found: paired comparisons and "
                  "validation-half picks show —.", ""]
    for student in sorted({r["student"] for r in data["rows"]} | set(data["base"])):
        base = data["base"].get(student, {})
        mine_t = [t for t in all_trials if t["student"] == student]
        mine_s = [s for s in summaries if s["student"] == student]
        lines += [f"## {student}", ""]
        if data["rows"] or base:
            lines += [f"![learning curves](curves-{student}.png)", ""]
        for t in mine_t:
            lines += [f"### {t['label']} traces (`{t['trial']}`)", "", *trial_table(data, t, base),
                      *_checkpoint_changes(data, t, log)]
        if not mine_t and base:
            lines += ["### Base model", "", *table(
                [benchmark_info(b).display for b in ordered(data["benchmarks"])],
                [[f"{pct(base[b]['accuracy'])} [{100 * base[b]['ci95_low']:.0f}–{100 * base[b]['ci95_high']:.0f}]"
                  if base.get(b) else "—" for b in ordered(data["benchmarks"])]])]
        if mine_s:
            lines += ["### Summary", "", *summary_table(data, mine_s, base, student)]
            for domain in dict.fromkeys(s["domain"] for s in mine_s):
                source = data_source_table(data, mine_s, base, domain)
                if source:
                    lines += [f"### {domain} traces: teacher vs teacher (best checkpoint of each)", "", *source]
            for teacher in dict.fromkeys(t["teacher"] for t in mine_t):
                cross = cross_domain_table(data, mine_t, teacher)
                if cross:
                    lines += [f"### {teacher} traces, both domains", "", *cross]
            lines += _takeaways(data, student, mine_s, log)
            lines += _teacher_steps(data, student, mine_t, log)
        lines += _responses_table(data, student, mine_t, base)
    lines += _problems(data)
    lines += audit or []
    lines += _traces(data)
    lines += ["All numbers: `results.csv`, `results.json` (with every paired comparison) in this folder.", ""]
    return lines


def _atomic(path: str, write: Any) -> None:
    """Whatever `write(handle)` writes, as one atomic file (files.write_text)."""
    buffer = io.StringIO(newline="")
    write(buffer)
    write_text(path, buffer.getvalue())


def write_report(exp_dir: str) -> str:
    """Write report.md (with curves, CSV and JSON beside it) for an experiment directory; returns the report path."""
    data = load_experiment(exp_dir)  # every input is read and checked before anything is written
    log = Comparisons()
    audit = contamination_section(contamination_audits(exp_dir))
    lines = render(data, os.path.basename(os.path.abspath(exp_dir)), log, audit)
    keys: list[str] = []
    for row in data["rows"]:
        keys.extend(k for k in row if k not in keys)

    def write_csv(handle: Any) -> None:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(data["rows"])

    plot_curves(data, exp_dir)
    _atomic(ex.report_data_file(exp_dir, "csv"), write_csv)
    _atomic(ex.report_data_file(exp_dir, "json"), lambda h: json.dump(
        {"trials": data["rows"], "base": data["base"], "traces": data["traces"], "comparisons": log.rows,
         "method": {"interval": "Newcombe method 10 (paired)", "test": "exact McNemar, two-sided",
                    "split_seed": SPLIT_SEED}}, h, indent=1))
    path = ex.report_file(exp_dir)
    _atomic(path, lambda h: h.write("\n".join(lines)))
    return path
