"""When the generate stage of a (teacher, domain) counts as done, and when its traces may be trained on.

    record_generation(marker_path, summary)    # writes generated.json only when the stage is complete, else raises
    generation_done(marker_path)               # True when a complete generated.json is there
    check_trainable(exp_dir, teacher, domain, max_failure_share)   # raises TooManyFailures above the threshold

The sweep calls these around `generate_traces` (the experiment layout `traces/<teacher>/<domain>/generated.json` is
the sweep's). *Complete* means every row is ok or a permanent failure (`client.PERMANENT_REASONS`); rows that failed
for transient reasons (timeouts, 5xx, errors in 200 bodies, budget, credits) leave the stage undone, so `--resume`
(or a plain re-run of `distill-ray generate`) retries exactly those and pays for nothing stored.

Not guaranteed: the threshold counts permanent failures other than truncation (truncated rows are the truncation
policy's result and are reported apart); a marker written by an older version without `complete` is taken as done.
"""

from __future__ import annotations

import json
import os


class GenerationIncomplete(RuntimeError):
    """Rows failed for transient reasons: the stage is not done; a re-run retries them."""


class TooManyFailures(RuntimeError):
    """Too large a share of a (teacher, domain)'s rows failed permanently to train on it without saying so."""


def generation_done(marker: str) -> bool:
    if not os.path.exists(marker):
        return False
    with open(marker, encoding="utf-8") as handle:
        return bool(json.load(handle).get("complete", True))


def record_generation(marker: str, summary: dict) -> None:
    """Write the stage's marker (atomically) when it is complete; GenerationIncomplete otherwise."""
    if not summary.get("complete"):
        reasons = {k: v for k, v in summary.get("failure_reasons", {}).items()}
        hint = (f" (the budget is spent: raise teachers.{summary.get('teacher')}.max_cost_usd first)"
                if "budget" in reasons else "")
        raise GenerationIncomplete(
            f"{os.path.dirname(marker)}: {summary.get('transient_failures')} of {summary.get('rows')} rows failed for "
            f"transient reasons (failure reasons: {json.dumps(reasons)}); run again (`--resume` for a sweep){hint}: "
            "only they are sent again, nothing stored is paid twice")
    os.makedirs(os.path.dirname(marker) or ".", exist_ok=True)
    tmp = f"{marker}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(summary, handle, indent=1, default=str)
    os.replace(tmp, marker)


def failure_share(summary: dict) -> float:
    """Share of rows that failed permanently, truncation by policy aside."""
    rows = int(summary.get("rows") or 0)
    if not rows:
        return 0.0
    reasons = summary.get("failure_reasons") or {}
    permanent = int(summary.get("permanent_failures") or 0) - int(reasons.get("truncated", 0))
    return max(0, permanent) / rows


def check_trainable(exp_dir: str, teacher: str, domain: str, max_failure_share: float) -> None:
    """TooManyFailures when the (teacher, domain)'s permanent failures exceed `max_failure_share` of its rows."""
    marker = os.path.join(exp_dir, "traces", teacher, domain, "generated.json")
    if not os.path.exists(marker):
        return
    with open(marker, encoding="utf-8") as handle:
        summary = json.load(handle)
    share = failure_share(summary)
    if share > max_failure_share:
        reasons = {k: v for k, v in (summary.get("failure_reasons") or {}).items() if k != "truncated"}
        raise TooManyFailures(
            f"{teacher}/{domain}: {share:.1%} of {summary.get('rows')} teacher rows failed permanently "
            f"({json.dumps(reasons)}), above teachers.{teacher}.max_failure_share = {max_failure_share:.1%}; "
            "training on the rest would quietly train on a different problem set. Raise the threshold if that is "
            "intended, or fix the cause (e.g. reasoning not requested, an invalid request) and generate again")
