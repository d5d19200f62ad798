"""What the report's tables compute: trials, best checkpoints, validation-half selection and paired comparisons.

    from distill_ray.report.analysis import trials, summary_rows, compare
    for s in summary_rows(data): print(s["label"], s["best"]["math"][0]["step"])

Checkpoint pairs are compared item by item: verdicts are paired by `problem_id` within a benchmark, and an item
missing from either side or judged "error" (the judge could not run) on either side is dropped from that comparison.
The test is the exact two-sided McNemar test, the interval Newcombe's paired method 10 (`distill_ray.stats`).

"Best" follows the seed: the checkpoint with the highest score on the benchmark it is reported on (earliest on a tie),
which is optimistic. The honest alternative splits each benchmark's items into two halves by a seeded hash of the
problem id (SPLIT_SEED), picks the checkpoint on the validation half and reports it on the other half.

Not guaranteed: the halves are balanced in size, not in difficulty; with few items per half the honest pick is noisy.
"""

from __future__ import annotations

import hashlib
from typing import Any

from distill_ray.report.data import benchmark_info
from distill_ray.stats import mcnemar_exact, paired_difference_interval, paired_table, wilson_interval

SPLIT_SEED = 0


def extras(row: dict) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k.split("/", 1)[1], row[k]) for k in row if k.startswith("extra/")))


def columns(benchmarks: list[str]) -> dict[str, str | None]:
    """{"math": the math-domain benchmark, "code": the code benchmark}; the first of each domain wins."""
    return {d: next((b for b in benchmarks if benchmark_info(b).domain == d), None) for d in ("math", "code")}


def trials(data: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per trial: student, teacher, domain, extras, label, rows sorted by step."""
    groups: dict[str, list[dict]] = {}
    for row in data["rows"]:
        groups.setdefault(row["trial"], []).append(row)
    out = []
    for name, rows in groups.items():
        rows.sort(key=lambda r: r["step"])
        first = rows[0]
        extra = extras(first)
        label = f"{first['teacher']} {first['domain']}" + (
            " (" + ", ".join(f"{k}={v}" for k, v in extra) + ")" if extra else "")
        out.append({"trial": name, "student": first["student"], "teacher": first["teacher"],
                    "domain": first["domain"], "extras": extra, "label": label, "rows": rows})
    order = data.get("order") or {}

    def rank(values: list[str], value: str) -> tuple[int, str]:
        return (values.index(value) if value in values else len(values), value)

    # the seed's row order: teachers in the grid's order (Sonnet before R1), math before code
    return sorted(out, key=lambda t: (t["student"], rank(order.get("teachers", []), t["teacher"]),
                                      rank(order.get("domains", ["math", "code"]), t["domain"]), str(t["extras"]),
                                      t["trial"]))


def best(rows: list[dict], bench: str | None) -> list[dict]:
    """The checkpoints with the highest score on `bench`, earliest first (the first is "the" best: the cheaper one)."""
    scored = [r for r in rows if bench and f"{bench}/accuracy" in r]
    if not scored:
        return []
    top = max(r[f"{bench}/accuracy"] for r in scored)
    return [r for r in scored if abs(r[f"{bench}/accuracy"] - top) < 1e-12]


def verdicts(data: dict[str, Any], bench: str, *, trial: str | None = None, step: int | None = None,
             student: str | None = None, base_only: bool = False) -> dict[str, bool] | None:
    """{problem_id: correct} of a checkpoint (trial, step) or a base model (student); None without per-item files.

    Items judged "error" are left out. base_only: the base-tests verdict (`base_status`) instead of the verdict."""
    if student is not None:
        items = data["base_items"].get(student, {}).get(bench)
    else:
        items = data["items"].get((trial, int(step or 0)), {}).get(bench)
    if items is None:
        return None
    if base_only:
        if not any(i.get("base_status") is not None for i in items.values()):
            return None
        return {pid: i["base_status"] == "pass" for pid, i in items.items()
                if i["verdict"] != "error" and i.get("base_status") is not None}
    return {pid: i["verdict"] == "pass" for pid, i in items.items() if i["verdict"] != "error"}


def accuracy(correct: dict[str, bool] | None) -> dict[str, Any] | None:
    if not correct:
        return None
    k, n = sum(correct.values()), len(correct)
    low, high = wilson_interval(k, n)
    return {"correct": k, "n": n, "accuracy": k / n, "ci95_low": low, "ci95_high": high}


def compare(a: dict[str, bool] | None, b: dict[str, bool] | None) -> dict[str, Any] | None:
    """A − B on the items both scored: difference, 95% paired interval, exact McNemar p, discordant counts."""
    if a is None or b is None:
        return None
    n11, n10, n01, n00 = paired_table(a, b)
    n = n11 + n10 + n01 + n00
    if n == 0:
        return None
    d, low, high = paired_difference_interval(n11, n10, n01, n00)
    return {"delta": d, "ci95_low": low, "ci95_high": high, "p": mcnemar_exact(n10, n01), "a_only": n10,
            "b_only": n01, "a_correct": n11 + n10, "b_correct": n11 + n01, "n": n, "dropped": len(a) + len(b) - 2 * n}


def all_ids(data: dict[str, Any], bench: str) -> list[str]:
    """Every problem id of `bench` seen anywhere in the experiment: the set the validation split halves."""
    ids: set[str] = set()
    for per_bench in [*data["items"].values(), *data["base_items"].values()]:
        ids.update(per_bench.get(bench, {}))
    return sorted(ids)


def split(ids: list[str], bench: str, seed: int = SPLIT_SEED) -> tuple[set[str], set[str]]:
    """(validation half, test half) of a benchmark's problem ids: order by sha256(seed:benchmark:id), halve."""
    ordered = sorted(ids, key=lambda i: hashlib.sha256(f"{seed}:{bench}:{i}".encode()).hexdigest())
    half = len(ordered) // 2
    return set(ordered[:half]), set(ordered[half:])


def honest_best(data: dict[str, Any], trial: dict[str, Any], bench: str | None) -> dict[str, Any] | None:
    """The checkpoint best on the validation half of `bench` (earliest on a tie), scored on the test half."""
    if not bench:
        return None
    per_step = [(r["step"], verdicts(data, bench, trial=trial["trial"], step=r["step"])) for r in trial["rows"]]
    per_step = [(s, v) for s, v in per_step if v]
    if not per_step:
        return None
    validation, test = split(all_ids(data, bench), bench)

    def share(v: dict[str, bool], ids: set[str]) -> float:
        kept = [v[i] for i in ids if i in v]
        return sum(kept) / len(kept) if kept else -1.0

    step, chosen = max(per_step, key=lambda sv: (share(sv[1], validation), -sv[0]))
    result = accuracy({i: c for i, c in chosen.items() if i in test})
    return {**result, "step": step} if result else None


def on_test_half(data: dict[str, Any], correct: dict[str, bool] | None, bench: str) -> dict[str, Any] | None:
    """Accuracy of `correct` on the test half of `bench` (the base row of the honest column)."""
    if not correct:
        return None
    _, test = split(all_ids(data, bench), bench)
    return accuracy({i: c for i, c in correct.items() if i in test})


def summary_rows(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Per trial: the best checkpoints per column ("math", "code"), seed-style and picked on the validation half."""
    cols = columns(data["benchmarks"])
    out = []
    for t in trials(data):
        out.append({**{k: t[k] for k in ("trial", "student", "teacher", "domain", "extras", "label")},
                    "columns": cols, "best": {d: best(t["rows"], b) for d, b in cols.items()},
                    "honest": {d: honest_best(data, t, b) for d, b in cols.items()}})
    return out
