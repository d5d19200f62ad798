"""Checks before the bulk of a generate run: the key is accepted, and one real request has the shape training needs.

    info = key_info(teacher)        # OpenRouter: GET {base_url}/key -> {"usage", "limit", "limit_remaining", ...}
    check_probe(teacher, rows)      # the first work item's rows: reasoning when required, a finish reason, a cost

`GET /api/v1/key` is OpenRouter's authenticated key endpoint (openrouter.ai/docs/api/api-reference/api-keys/get-current-
key): a 200 answers `{"data": {"usage", "limit", "limit_remaining", ...}}` in dollars, a 401 means the key is invalid.
`GET /models` needs no key there, so it proves nothing. Where there is no key endpoint, the probe is the key check: it
is not an extra request but the run's first work item, sent alone before the others, so its answer is stored and used
like every other one (a 401/403 on it stops the run). An earlier 1-token "key check" request was billed on every run
and never stored, which the stop-loss benchmark counted as an answer paid and lost; there is no such request now.

Not guaranteed: a key accepted now can run out of credits later (the client stops on 402); `usage` on OpenRouter
covers every request made with the key, also by other programs, so the start/end difference is only comparable to the
ledger when nothing else uses the key meanwhile.
"""

from __future__ import annotations

import time

from distill_ray.teacher.client import (
    PERMANENT_REASONS,
    FatalTeacherError,
    key_source,
    resolve_api_key,
)
from distill_ray.teacher.spec import TeacherSpec

KEY_TIMEOUT_S = 20.0


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_info(teacher: TeacherSpec) -> dict | None:
    """OpenRouter's view of the key (usage, limit, limit_remaining in dollars); None where there is no such endpoint.

    Raises FatalTeacherError on 401/403 (the message names the variable or file, never the key).
    """
    if teacher.provider not in ("openrouter", "builtin"):
        return None
    key = resolve_api_key(teacher)
    import httpx2

    url = teacher.base_url.rstrip("/") + "/key"
    try:
        response = httpx2.get(url, headers=_headers(key), timeout=KEY_TIMEOUT_S)
    except Exception:
        return None  # unreachable now: the requests themselves retry and report it
    if response.status_code in (401, 403):
        raise FatalTeacherError(f"teacher {teacher.name!r}: the provider refused the API key (HTTP "
                                f"{response.status_code} on GET /key); check {key_source(teacher)}")
    if response.status_code != 200:
        return None
    try:
        data = response.json().get("data")
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    return {k: data.get(k) for k in ("usage", "limit", "limit_remaining", "is_free_tier", "label")}


def check_probe(teacher: TeacherSpec, rows: list[dict]) -> dict:
    """Judge the probe's rows; FatalTeacherError when the bulk run would fail the same way for every row.

    Fatal: an invalid request (400, e.g. temperature with top_p on an Anthropic model) and, with `require_reasoning`,
    an answer without reasoning (the `reasoning` setting is missing or not honoured). A transient failure is not
    fatal (the bulk run retries it); a per-input verdict (moderation, content filter) is not either.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    verdict = {"rows": len(rows), "ok": len(ok), "finish_reasons": sorted({r["finish_reason"] for r in rows}),
               "reasoning_present": any(r["reasoning"] for r in ok), "checked_at": time.time(),
               "failures": sorted({r["failure"] for r in rows if r["failure"]})}
    for row in rows:
        if row["failure"] in ("invalid_request", "no_reasoning") or row["failure"].startswith("http_"):
            hint = {"invalid_request": "the provider rejected the request itself; check sampling (Anthropic models "
                                       "accept temperature or top_p, not both), reasoning and extra_body",
                    "no_reasoning": "require_reasoning is set but the answer has no reasoning; set teachers.<t>."
                                    "reasoning (Anthropic models reason only when asked)"}.get(row["failure"], "")
            raise FatalTeacherError(f"teacher {teacher.name!r}: the probe request failed ({row['error'][:300]}); "
                                    f"{hint}; nothing else was sent")
    verdict["cost_reported"] = all(r["cost_source"] == "provider" for r in ok) if ok else None
    verdict["permanent"] = [r["failure"] for r in rows if r["failure"] in PERMANENT_REASONS]
    return verdict
