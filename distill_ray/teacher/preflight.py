"""Checks before the bulk of a generate run: the key is accepted, and one real request has the shape training needs.

    info = key_info(teacher)        # OpenRouter: GET {base_url}/key -> {"usage", "limit", "limit_remaining", ...}
    cost = key_check(teacher)       # elsewhere: a 1-token request (its cost is returned, and counted in the ledger)
    check_probe(teacher, rows)      # the first work item's rows: reasoning when required, a finish reason, a cost

`GET /api/v1/key` is OpenRouter's authenticated key endpoint (openrouter.ai/docs/api/api-reference/api-keys/get-current-
key): a 200 answers `{"data": {"usage", "limit", "limit_remaining", ...}}` in dollars, a 401 means the key is invalid.
`GET /models` needs no key there, so it proves nothing. The probe is not an extra request: it is the run's first work
item, sent alone before the others, so its answer is stored and used like every other one.

Not guaranteed: a key accepted now can run out of credits later (the client stops on 402); `usage` on OpenRouter
covers every request made with the key, also by other programs, so the start/end difference is only comparable to the
ledger when nothing else uses the key meanwhile.
"""

from __future__ import annotations

import time
from typing import Any

from distill_ray.teacher.client import (
    DUMMY_API_KEY,
    PERMANENT_REASONS,
    FatalTeacherError,
    key_source,
    resolve_api_key,
)

KEY_TIMEOUT_S = 20.0


def _headers(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def key_info(teacher: dict) -> dict | None:
    """OpenRouter's view of the key (usage, limit, limit_remaining in dollars); None where there is no such endpoint.

    Raises FatalTeacherError on 401/403 (the message names the variable or file, never the key).
    """
    if teacher.get("provider") not in ("openrouter", "builtin"):
        return None
    key = resolve_api_key(teacher)
    import httpx2

    url = teacher["base_url"].rstrip("/") + "/key"
    try:
        response = httpx2.get(url, headers=_headers(key), timeout=KEY_TIMEOUT_S)
    except Exception:
        return None  # unreachable now: the requests themselves retry and report it
    if response.status_code in (401, 403):
        raise FatalTeacherError(f"teacher {teacher['name']!r}: the provider refused the API key (HTTP "
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


def key_check(teacher: dict) -> float:
    """A 1-token request where the provider has no key endpoint; returns its reported cost (0.0 when none or skipped).

    Skipped (0.0) when no key is configured: there is nothing to authenticate.
    """
    key = resolve_api_key(teacher)
    if key == DUMMY_API_KEY:
        return 0.0
    import httpx2

    url = teacher["base_url"].rstrip("/") + "/chat/completions"
    body: dict[str, Any] = {"model": teacher["model"], "messages": [{"role": "user", "content": "Say OK."}],
                            "max_tokens": 1}
    try:
        response = httpx2.post(url, headers=_headers(key), json=body, timeout=KEY_TIMEOUT_S)
    except Exception:
        return 0.0
    if response.status_code in (401, 403):
        raise FatalTeacherError(f"teacher {teacher['name']!r}: the provider refused the API key (HTTP "
                                f"{response.status_code} on a 1-token request); check {key_source(teacher)}")
    try:
        usage = response.json().get("usage") or {}
    except (ValueError, AttributeError):
        return 0.0
    cost = usage.get("cost") if isinstance(usage, dict) else None
    return float(cost) if isinstance(cost, (int, float)) and not isinstance(cost, bool) else 0.0


def check_probe(teacher: dict, rows: list[dict]) -> dict:
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
            raise FatalTeacherError(f"teacher {teacher['name']!r}: the probe request failed ({row['error'][:300]}); "
                                    f"{hint}; nothing else was sent")
    verdict["cost_reported"] = all(r["cost_source"] == "provider" for r in ok) if ok else None
    verdict["permanent"] = [r["failure"] for r in rows if r["failure"] in PERMANENT_REASONS]
    return verdict
