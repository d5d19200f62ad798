"""The generate stage of a (teacher, domain): raw traces, when the stage counts as done, when they may be trained on.

    generate_stage(exp_dir, "sonnet", sweep.teachers["sonnet"], "math", problems)   # traces/<teacher>/<domain>/raw
    record_generation(marker_path, summary)    # writes generated.json only when the stage is complete, else raises
    generation_done(marker_path)               # True when a complete generated.json is there
    check_trainable(exp_dir, teacher, domain, max_failure_share)   # raises TooManyFailures above the threshold

`generate_stage` calls `teacher.generate_traces` and then `record_generation`. *Complete* means every row is ok or a
permanent failure (`teacher.client.PERMANENT_REASONS`); rows that failed for transient reasons (timeouts, 5xx,
errors in 200 bodies, budget, credits) leave the stage undone, so `--resume` (or a plain re-run of `distill-ray
generate`) retries exactly those and pays for nothing stored.

Not guaranteed: the threshold counts permanent failures other than truncation (truncated rows are the truncation
policy's result and are reported apart); a marker written by an older version without `complete` is taken as done.
"""

from __future__ import annotations

import json
import os

from distill_ray import experiment as ex
from distill_ray.config import TeacherConfig
from distill_ray.records import Problem


class GenerationIncomplete(RuntimeError):
    """Rows failed for transient reasons: the stage is not done; a re-run retries them."""


class TooManyFailures(RuntimeError):
    """Too large a share of a (teacher, domain)'s rows failed permanently to train on it without saying so."""


def generation_done(marker: str) -> bool:
    if not os.path.exists(marker):
        return False
    return bool(ex.read_json(marker).get("complete", True))


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
    ex.write_json(marker, summary)


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
    marker = ex.generated_file(exp_dir, teacher, domain)
    if not os.path.exists(marker):
        return
    summary = ex.read_json(marker)
    share = failure_share(summary)
    if share > max_failure_share:
        reasons = {k: v for k, v in (summary.get("failure_reasons") or {}).items() if k != "truncated"}
        raise TooManyFailures(
            f"{teacher}/{domain}: {share:.1%} of {summary.get('rows')} teacher rows failed permanently "
            f"({json.dumps(reasons)}), above teachers.{teacher}.max_failure_share = {max_failure_share:.1%}; "
            "training on the rest would quietly train on a different problem set. Raise the threshold if that is "
            "intended, or fix the cause (e.g. reasoning not requested, an invalid request) and generate again")


def generate_stage(exp_dir: str, teacher_name: str, teacher: TeacherConfig, domain: str,
                   problems: list[Problem]) -> dict:
    """Raw traces of one (teacher, domain) under traces/<teacher>/<domain>/raw; resumable, never pays twice."""
    from distill_ray.teacher import generate_traces

    marker = ex.generated_file(exp_dir, teacher_name, domain)
    if generation_done(marker):
        return ex.read_json(marker)
    summary = generate_traces(problems, teacher_name, teacher, ex.raw_traces_dir(exp_dir, teacher_name, domain),
                              cache_dir=ex.cache_dir(exp_dir, "teacher"))
    record_generation(marker, summary)  # only a complete stage is marked done; else GenerationIncomplete
    return summary
