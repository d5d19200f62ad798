"""Trace statistics per (teacher, domain); the Wilson interval comes from `distill_ray.stats`.

    from distill_ray.verify import trace_statistics
    trace_statistics(verified_rows)["sonnet/math"]["pass_rate"]

Rows are `records.VerifiedTrace` dicts; missing optional fields (teacher, completion_tokens, truncated) are tolerated so
benchmark scorers can reuse the helpers. Rows with an "error" verdict are counted apart and excluded from the pass
rate: an infrastructure failure is not a wrong answer. Pure Python; no Ray.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from distill_ray.stats import wilson_interval

__all__ = ["percentile", "trace_statistics", "wilson_interval"]


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in 0..100), as numpy's default; nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def group_statistics(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    rows = list(rows)
    judged = [r for r in rows if r.get("verdict") in ("pass", "fail")]
    passed = sum(1 for r in judged if r["verdict"] == "pass")
    low, high = wilson_interval(passed, len(judged))
    tokens = [float(r["completion_tokens"]) for r in rows if r.get("completion_tokens") is not None]
    truncated = [bool(r["truncated"]) for r in rows if r.get("truncated") is not None]
    reasons = Counter(str(r.get("reason", "")) for r in rows if r.get("verdict") != "pass")
    return {
        "n": len(judged),
        "passed": passed,
        "errors": sum(1 for r in rows if r.get("verdict") == "error"),
        "pass_rate": passed / len(judged) if judged else float("nan"),
        "ci95": [low, high],
        "tokens_mean": sum(tokens) / len(tokens) if tokens else float("nan"),
        "tokens_p50": percentile(tokens, 50),
        "tokens_p90": percentile(tokens, 90),
        "truncation_rate": sum(truncated) / len(truncated) if truncated else float("nan"),
        "failure_reasons": dict(sorted(reasons.items())),
    }


def trace_statistics(rows: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """{"teacher/domain": {teacher, domain, n, passed, errors, pass_rate, ci95, tokens_mean, tokens_p50, tokens_p90,
    truncation_rate, failure_reasons}} for verified trace rows."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault((str(row.get("teacher", "")), str(row.get("domain", ""))), []).append(row)
    out: dict[str, dict[str, Any]] = {}
    for (teacher, domain), members in sorted(groups.items()):
        out["%s/%s" % (teacher, domain)] = {"teacher": teacher, "domain": domain, **group_statistics(members)}
    return out
