"""`TeacherSpec`: one teacher as the generate stage's code below the config sees it, built once from `TeacherConfig`.

    spec = teacher_spec("sonnet", teacher_config)      # raises ValueError when there is no base_url
    spec.sampling["max_tokens"], spec.cache_url, spec.name
    spec = dataclasses.replace(spec, spent_before_usd=2.5)   # frozen: a changed spec is a new one

It is frozen (safe to hand to Ray actors and tasks, which pickle it) and carries every `TeacherConfig` field under
the same name, plus `name`, `cache_url` (the identity the response cache keys on) and `spent_before_usd`. The nested
fields that end up in JSON (request bodies, cache keys, batch ledgers) stay the plain dicts `model_dump` gives
(`sampling`, `price`, `reasoning`, `extra_body`, `provider_routing`, `batch`), so the cache key hashes exactly the
dict it hashed before this type existed.

Not guaranteed: the nested dicts are not deep-frozen (code must not mutate them; nothing here does); a field added to
`TeacherConfig` must be added here too (construction raises TypeError until it is).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from distill_ray.config import TeacherConfig

__all__ = ["BUILTIN_CACHE_URL", "TeacherSpec", "teacher_spec"]

# The built-in server listens on a fresh port each run; keying its responses by that URL would make every resume of
# the embedded default pay again. Its answers depend only on the request, so one identity serves.
BUILTIN_CACHE_URL = "builtin://teacher-server"


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    cache_url: str
    provider: str
    base_url: str
    model: str
    api_key_env: str | None
    sampling: dict[str, Any]
    samples_per_problem: int
    n_in_one_request: bool
    concurrency: int
    actors: int
    max_rps: float | None
    max_tokens_per_minute: float | None
    request_timeout_s: float
    max_retries: int
    empty_retries: int
    retry_base_delay_s: float
    retry_max_delay_s: float
    max_cost_usd: float | None
    price: dict[str, Any]
    extra_body: dict[str, Any]
    truncation_policy: str
    retry_max_tokens_cap: int
    correct_rate: float | None
    style: str | None
    reasoning: dict[str, Any] | None
    require_reasoning: bool
    provider_routing: dict[str, Any] | None
    api_key_file: str | None
    max_failure_share: float
    mode: str
    batch: dict[str, Any]
    # paid in this teacher's cache namespace before the current run (answers, verdicts, billed non-answers)
    spent_before_usd: float = 0.0


def teacher_spec(name: str, teacher: TeacherConfig) -> TeacherSpec:
    """The spec of `teacher` under `name`; a teacher without base_url (builtin before its server starts) is refused."""
    if not teacher.base_url:
        raise ValueError(f"teacher {name!r}: no base_url (for provider builtin, pass the teacher server's "
                         "handle.base_url, e.g. teacher.model_copy(update={'base_url': handle.base_url}))")
    cache_url = BUILTIN_CACHE_URL if teacher.provider == "builtin" else teacher.base_url
    return TeacherSpec(name=name, cache_url=cache_url, **teacher.model_dump())
