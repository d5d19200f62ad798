"""Async teacher clients: one `TeacherClient` per process sends requests with the official `openai` client.

`generate_traces` makes `TeacherClient` a Ray actor (several of them, each with its share of the concurrency) or, with
no Ray, runs one in-process. A client gets work items (a problem and the sample indices it still needs, with whatever
the cache already holds for them) and returns one `Trace` row per sample. For every request it:

- waits for a slot in its `AdaptiveWindow` (per-client concurrency, halved on 429, regrown on success) and in the
  shared `RateLimiter` (cluster-wide requests/s and tokens/min, leased in chunks);
- sends one `chat.completions` request (`n` samples in one request, or one request per sample) with a per-request
  timeout (httpx's read timeout, so a hung provider is cut off; keep it long for long reasoning traces);
- retries 429, 5xx, 408 (never before a Retry-After / retry-after-ms), timeouts, dropped connections, malformed
  bodies and answers that are not traces (below) up to `max_retries`, with exponential backoff and full jitter;
- writes every billed choice to the response cache (fsync'ed) before the row counts as done, and every permanent
  verdict (below) too, so a re-run neither pays for it again nor retries it.

A response is a trace only if it is one. OpenRouter's error documentation (openrouter.ai/docs/api/reference/errors-and-
debugging) says that once a model has started, failures come back as HTTP 200 with an `error` object in the body; so
a top-level `error`, a choice-level `error`, `finish_reason: "error"`, and `usage: null` with no content are
*transient* (retried now, and on a re-run when retries run out; never cached). A billed empty answer (empty content,
finish reason not `length`) is asked again `empty_retries` times (default 2, counted as `empty_retried`, each try's
cost in the ledger and the cache), apart from `max_retries`; after that it is permanent (`empty_content`).
`finish_reason: "content_filter"`, a 400 (the request is invalid), a 403 whose `error.metadata` names flagged
`reasons` (reason `moderation`, reasons kept) and, with `require_reasoning`, an answer without reasoning
(`no_reasoning`) are *permanent*: the row fails with its reason, the verdict is cached, nothing of it reaches training.
With `n` > 1 in one request, an empty choice is permanent at once (asking again would re-pay the other choices).

Status codes by meaning (same page): 401 (invalid key) and 403 without moderation metadata (a refused key) stop
every client from starting new requests (reason `fatal`; the driver raises `FatalTeacherError`, naming where the key
came from, once the requests already admitted have finished and been stored); 402 (insufficient credits) without
Retry-After stops them the same way (reason `credits`; the run ends with `CreditsExhausted`), 402 with Retry-After
(OpenRouter's in-flight budget) waits and retries; 503 and 429 wait at least their Retry-After.

Reasoning is normalised from OpenRouter's `message.reasoning` / `reasoning_details` (text and summary items; encrypted
items are counted, never put in the text), DeepSeek's `reasoning_content` or an inline `<think>…</think>` (also an
unclosed one, and R1's missing opening tag). The teacher's `reasoning` setting is sent as OpenRouter's `reasoning`
object and `provider_routing` as its `provider` object (openrouter.ai/docs/use-cases/reasoning-tokens,
openrouter.ai/docs/features/provider-routing). Cost is the provider's `usage.cost` when it
reports one, else the price table's estimate. With `n` > 1, usage is split over the choices by their text length.

Not guaranteed: a request that was billed but whose answer never arrived (a connection dropped after the provider
charged) is paid again on retry; nothing on the client side can see that charge. Budget checks are made before each
request against a view of the run's spending that is at most one flush interval (0.25 s) old, so in-flight requests
and that interval may carry spending slightly past `max_cost_usd`.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import random
import time
import uuid
from collections import Counter
from typing import Any

from distill_ray.records import TeacherWorkItem, TraceRow
from distill_ray.teacher.answers import (  # noqa: F401  (re-exported: the stage and tests import them from here)
    PERMANENT_REASONS,
    build_row,
    classify_choice,
    failure_reason,
    failure_record,
    normalise_message,
    parse_message,
    prompt_hash,
    training_text,
)
from distill_ray.teacher.cache import ResponseCache, SegmentWriter, request_key
from distill_ray.teacher.ratelimit import AdaptiveWindow
from distill_ray.teacher.spec import TeacherSpec

SAMPLE_INDEX_HEADER = "X-Distill-Sample-Index"
DUMMY_API_KEY = "distill-ray-no-key"  # for providers that need no key (builtin, local vLLM)
FLUSH_INTERVAL_S = 0.25


class FatalTeacherError(RuntimeError):
    """The provider refused us (401/403) or no key is configured: stop before (or without) spending more."""


class CreditsExhausted(FatalTeacherError):
    """HTTP 402 without Retry-After: the account or key has no credits left; everything paid so far is stored."""


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind, self.retry_after = kind, retry_after


class _Permanent(Exception):
    """A verdict about this request that asking again will not change; cached like an answer."""

    def __init__(self, kind: str, message: str, detail: dict | None = None):
        super().__init__(message)
        self.kind, self.detail = kind, detail or {}


class _GaveUp(Exception):
    """A transient failure that outlasted max_retries: the row fails now and is retried by a re-run."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _CreditsStop(Exception):
    pass


class _BudgetStop(Exception):
    """No new request may start: the budget is spent or the run was interrupted."""


STOP_REASONS = {
    "budget": "budget: max_cost_usd reached before this request was sent",
    "interrupted": "interrupted: the run was stopped before this request was sent",
    "credits": "credits: the provider reported insufficient credits (HTTP 402) before this request was sent",
    "fatal": "fatal: the provider refused the key or the request (401/403) before this request was sent",
}
def messages_for(prompt: str) -> list[dict]:
    return [{"role": "user", "content": prompt}]


def reasoning_object(teacher: TeacherSpec) -> dict | None:
    """OpenRouter's `reasoning` request object from the teacher's setting (None: not sent)."""
    reasoning = teacher.reasoning
    if not reasoning:
        return None
    return {k: v for k, v in reasoning.items() if v is not None and not (k == "exclude" and not v)}


def answer_shaping_fields(teacher: TeacherSpec, max_tokens: int) -> dict[str, Any]:
    """The one builder of what shapes an answer: sampling fields that are set, max_tokens, reasoning, routing, and
    the teacher's extra_body (kept apart here; `request_body` merges it in). The request body and the cache key
    (`sampling_for`) are both made from this, so they cannot disagree."""
    sampling = teacher.sampling
    fields: dict[str, Any] = {k: sampling[k] for k in ("temperature", "top_p") if sampling.get(k) is not None}
    fields["max_tokens"] = max_tokens
    if reasoning_object(teacher):
        fields["reasoning"] = reasoning_object(teacher)
    if teacher.provider_routing:
        fields["provider"] = teacher.provider_routing
    if teacher.extra_body:
        fields["extra_body"] = teacher.extra_body
    return fields


def sampling_for(teacher: TeacherSpec, max_tokens: int) -> dict:
    """The request parameters that shape an answer, as the cache key holds them (extra_body nested, as it always
    was, so stored caches stay valid)."""
    return answer_shaping_fields(teacher, max_tokens)


def request_body(teacher: TeacherSpec, messages: list, n: int, max_tokens: int) -> dict:
    """The JSON body of one chat completion: the answer-shaping fields, with extra_body merged on top."""
    fields = answer_shaping_fields(teacher, max_tokens)
    extra = fields.pop("extra_body", None) or {}
    body: dict[str, Any] = {"model": teacher.model, "messages": messages, **fields}
    if n > 1:
        body["n"] = n
    body.update(extra)
    return body


def key_source(teacher: TeacherSpec) -> str:
    """Where the key comes from, for messages (never the key itself)."""
    if teacher.api_key_file:
        return f"the file named by api_key_file ({teacher.api_key_file})"
    if teacher.api_key_env:
        return f"the environment variable {teacher.api_key_env}"
    return "no key is configured (api_key_env / api_key_file)"


def resolve_api_key(teacher: TeacherSpec) -> str:
    """The key from `api_key_file` or `os.environ[api_key_env]`; a dummy key when none is needed; FatalTeacherError
    when it is missing. The message names the variable or file, never the value."""
    name = teacher.name
    path = teacher.api_key_file
    if path:
        try:
            with open(os.path.expanduser(path), encoding="utf-8") as handle:
                value = handle.read().strip()
        except OSError as exc:
            raise FatalTeacherError(f"teacher {name!r}: api_key_file {path}: cannot be read ({exc.strerror}); "
                                    "nothing was sent") from None
        if not value:
            raise FatalTeacherError(f"teacher {name!r}: api_key_file {path} is empty; nothing was sent")
        return value
    env = teacher.api_key_env
    if not env:
        return DUMMY_API_KEY
    value = os.environ.get(env, "")
    if not value:
        raise FatalTeacherError(f"teacher {name!r}: environment variable {env} "
                                "is not set or empty; set it to the provider's API key (nothing was sent)")
    return value


def _retry_after(headers: Any) -> float | None:
    """Seconds from retry-after-ms, or Retry-After as seconds or an HTTP date."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError):
            return None


class RunLedger:
    """A run's shared tallies: spending (for the budget), progress and errors, summed over all clients.

    `already_spent` is what the teacher's cache says was paid before this run (other domains, earlier runs), so the
    budget is per teacher across domains and resumes, not per call.
    """

    def __init__(self, max_cost_usd: float | None = None, already_spent: float = 0.0):
        self.max_cost_usd = max_cost_usd
        self.already_spent = float(already_spent)
        self.totals: Counter = Counter()
        self.errors: Counter = Counter()
        self.stopped = ""  # why no new requests may start ("" while they may)
        self.fatal_message = ""  # with stopped == "fatal": what the provider refused, re-raised once all is stored
        self.started = time.time()

    def add(self, delta: dict) -> dict:
        for key, value in delta.get("totals", {}).items():
            self.totals[key] += value
        for key, value in delta.get("errors", {}).items():
            self.errors[key] += value
        if delta.get("stop"):
            self.stop(delta["stop"], delta.get("fatal_message", ""))
        spent = self.already_spent + self.totals["cost_usd"]
        if self.max_cost_usd is not None and spent >= self.max_cost_usd and not self.stopped:
            self.stopped = "budget"
        return {"cost_usd": spent, "stopped": self.stopped}

    def stop(self, reason: str, fatal_message: str = "") -> None:
        self.stopped = self.stopped or reason
        self.fatal_message = self.fatal_message or fatal_message

    def snapshot(self) -> dict:
        return {"totals": dict(self.totals), "errors": dict(self.errors), "stopped": self.stopped,
                "fatal_message": self.fatal_message, "elapsed_s": time.time() - self.started}


async def _call(target: Any, method: str, *args: Any) -> Any:
    """Call a method on a plain object or a Ray actor handle alike."""
    fn = getattr(target, method)
    remote = getattr(fn, "remote", None)
    if remote is not None:
        return await remote(*args)
    return fn(*args)


class TeacherClient:
    """Sends one teacher's requests; a plain class, made a Ray actor by `generate_traces`."""

    def __init__(self, teacher: TeacherSpec, concurrency: int, cache_dir: str, cache_ns: str,
                 limiter: Any = None, ledger: Any = None, limiter_chunk: int = 1):
        self.teacher = teacher
        self.concurrency = max(1, concurrency)
        self.cache_dir, self.cache_ns = cache_dir, cache_ns
        self.limiter = limiter
        self.ledger = ledger
        self.limiter_chunk = max(1, limiter_chunk)
        self._client: Any = None
        self._writer: SegmentWriter | None = None
        self._window: AdaptiveWindow | None = None
        self._slots: list[float] = []
        self._slot_lock: asyncio.Lock | None = None
        self._delta_totals: Counter = Counter()
        self._delta_errors: Counter = Counter()
        self._unflushed_cost = 0.0
        self._spent_view = float(teacher.spent_before_usd or 0.0)
        self._stopped = ""
        self._stop_to_send = ""
        self._fatal_message = ""
        self._flusher: asyncio.Task | None = None
        self._avg_completion = float(min(teacher.sampling["max_tokens"], 1024))
        self._rng = random.Random()

    # -- setup --------------------------------------------------------------------------------------------------
    def _setup(self) -> None:
        if self._client is not None:
            return
        import httpx2
        import openai
        from openai import AsyncOpenAI

        timeout_s = float(self.teacher.request_timeout_s)
        # the pool must hold the whole window, or requests would queue (and time out) inside the HTTP client
        limits = httpx2.Limits(max_connections=self.concurrency + 8, max_keepalive_connections=self.concurrency + 8)
        timeout = httpx2.Timeout(timeout_s, connect=min(timeout_s, 30.0))
        try:
            # openai's aiohttp transport (the `openai[aiohttp]` extra) costs about half the CPU per request of the
            # default one, which is what bounds a client process at high concurrency
            import aiohttp  # noqa: F401

            http_client = openai.DefaultAioHttpClient(limits=limits, timeout=timeout)
        except ImportError:
            http_client = httpx2.AsyncClient(limits=limits, timeout=timeout)
        self._client = AsyncOpenAI(api_key=resolve_api_key(self.teacher), base_url=self.teacher.base_url,
                                   max_retries=0, timeout=timeout_s, http_client=http_client)
        self._writer = ResponseCache(self.cache_dir, self.cache_ns).writer()
        self._window = AdaptiveWindow(self.concurrency)
        self._slot_lock = asyncio.Lock()

    async def ready(self) -> bool:
        """Import and build the HTTP client now, so every actor's first requests leave together.

        Only called on a client actor, a process of its own: there the collector is tuned for a request loop. The
        imports (openai, httpx, Ray) leave a large heap of long-lived objects that every full collection would walk
        again; `gc.freeze` moves them out of its way, and a larger first generation makes collections rarer. In a
        client at concurrency 128 this took the collector from about 15% of the CPU to about 2%.
        """
        import gc

        self._setup()
        gc.freeze()
        gc.set_threshold(20000, 50, 100)
        return True

    async def close(self) -> dict:
        await self._flush_stats()
        if self._client is not None:
            await self._client.close()
        if self._writer is not None:
            self._writer.close()
        return {"window_min": self._window.min_seen if self._window else None}

    # -- stats and budget ---------------------------------------------------------------------------------------
    async def _flush_stats(self) -> None:
        if self.ledger is None:
            return
        totals, errors = self._delta_totals, self._delta_errors
        self._delta_totals, self._delta_errors = Counter(), Counter()
        self._unflushed_cost = 0.0
        stop, self._stop_to_send = self._stop_to_send, ""
        view = await _call(self.ledger, "add", {"totals": dict(totals), "errors": dict(errors), "stop": stop,
                                                "fatal_message": self._fatal_message})
        self._spent_view = view["cost_usd"]
        self._stopped = view["stopped"] or self._stopped  # a stop set while the flush was awaited stays

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL_S)
            try:
                await self._flush_stats()
            except Exception:  # the ledger is best effort; the budget check falls back to local spending
                pass

    def _count(self, **values: float) -> None:
        for key, value in values.items():
            self._delta_totals[key] += value

    def _over_budget(self) -> str:
        """Why no new request may start ("" when one may)."""
        if self._stopped:
            return self._stopped
        cap = self.teacher.max_cost_usd
        if cap is not None and self._spent_view + self._unflushed_cost >= cap:
            return "budget"
        return ""

    # -- one request --------------------------------------------------------------------------------------------
    async def _slot(self) -> None:
        if self.limiter is None:
            return
        assert self._slot_lock is not None
        async with self._slot_lock:
            if not self._slots:
                estimate = self._avg_completion + 200
                delays = await _call(self.limiter, "acquire", self.limiter_chunk, estimate)
                now = time.monotonic()
                self._slots = [now + d for d in delays]
            slot = self._slots.pop(0)
        wait = slot - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)

    async def _send(self, messages: list, n: int, first_index: int, max_tokens: int) -> tuple[dict, float]:
        """One HTTP attempt; returns the parsed body and its latency, or raises _Retryable/_Permanent."""
        import httpx2
        import openai

        body = request_body(self.teacher, messages, n, max_tokens)
        started = time.monotonic()
        try:
            # The client's documented raw-request path: the same auth, base_url, timeouts and status errors as
            # `chat.completions.create`, without its per-request type transform of the parameters and pydantic
            # model of the answer (together over half of the client's CPU per request, the limit at high
            # concurrency). Our messages are plain JSON already and the body is parsed below.
            raw = await self._client.post("/chat/completions", cast_to=httpx2.Response, body=body,
                                          options={"headers": {SAMPLE_INDEX_HEADER: str(first_index)}})
            data = raw.content
            await raw.aclose()  # hands the connection back to the pool for the next request
        except openai.APIStatusError as exc:
            raise _status_error(self.teacher, exc) from None
        except openai.APITimeoutError as exc:
            if _disconnected(exc):  # the aiohttp transport reports a dropped connection as a connect timeout
                raise _Retryable("connection", f"connection dropped: {_root(exc)!r}"[:200]) from None
            raise _Retryable("timeout", f"no answer within {self.teacher.request_timeout_s} s") from None
        except openai.APIConnectionError as exc:
            raise _Retryable("connection", f"connection failed: {exc.__cause__ or exc}") from None
        latency = time.monotonic() - started
        try:
            body = json.loads(data)
            if isinstance(body, dict) and body.get("error"):
                # OpenRouter: a failure after the model started is a 200 whose body carries the error
                raise _Retryable("error_in_200", f"error in a 200 body: {str(body['error'])[:200]}",
                                 _retry_after(raw.headers))
            choices = body["choices"]
            if not isinstance(choices, list) or not choices or not all(isinstance(c, dict) for c in choices):
                raise ValueError("no choices")
            for choice in choices:
                if not isinstance(choice.get("message"), dict):
                    raise ValueError("a choice without a message")
        except (ValueError, KeyError, TypeError) as exc:
            raise _Retryable("malformed", f"malformed response body ({exc})") from None
        if body.get("usage") is None and not any(any(parse_message(c["message"])[:2]) for c in choices):
            raise _Retryable("no_usage", "usage null and no content: not an answer")
        return body, latency

    async def _request(self, messages: list, indices: list[int], max_tokens: int) -> list[dict | str]:
        """Send until answered or out of attempts; one cache record (durably written) or transient reason per index."""
        assert self._window is not None and self._writer is not None
        attempts = empties = 0
        max_attempts = int(self.teacher.max_retries) + 1
        while True:
            attempts += 1
            if self._over_budget():
                raise _BudgetStop(self._over_budget())
            await self._window.acquire()
            try:
                await self._slot()
                if self._over_budget():
                    raise _BudgetStop(self._over_budget())
                self._count(requests=1)
                body, latency = await self._send(messages, len(indices), indices[0], max_tokens)
                if len(indices) == 1:
                    verdict = classify_choice(body["choices"][0], self.teacher)
                    if verdict is not None and not verdict[1]:
                        await self._spend_only(body)  # whatever a non-answer was billed still counts
                        raise _Retryable(verdict[0], f"the answer is not a trace ({verdict[0]})")
                    if verdict == ("empty_content", True) and empties < int(self.teacher.empty_retries):
                        # a billed empty answer is usually followed by a real one: ask again, within its own bound
                        empties += 1
                        await self._spend_only(body)
                        raise _Retryable("empty_retried", "an empty answer (finish_reason stop, no content)")
            except _Retryable as exc:
                self._delta_errors[exc.kind] += 1
                if exc.kind == "429":
                    self._window.on_throttle()
                    if self.limiter is not None:
                        asyncio.ensure_future(_call(self.limiter, "throttled", exc.retry_after))
                if exc.kind == "empty_retried":
                    max_attempts += 1  # bounded by empty_retries, not by the transport's max_retries
                if attempts >= max_attempts:
                    raise _GaveUp(exc.kind, f"{exc} (gave up after {attempts} attempts)") from None
                delay = self._backoff(attempts)
                if exc.retry_after is not None:
                    # never before the provider said; a little jitter so the retries do not arrive together
                    delay = exc.retry_after + self._rng.uniform(0, min(1.0, 0.1 + exc.retry_after * 0.1))
                wait_after_release = delay
            except _Permanent as exc:
                self._delta_errors[exc.kind] += 1
                return [await self._store_verdict(messages, i, max_tokens, exc, attempts) for i in indices]
            except _CreditsStop as exc:
                self._delta_errors["credits"] += 1
                self._stopped = self._stop_to_send = "credits"
                raise _GaveUp("credits", str(exc)) from None
            else:
                self._window.on_success()
                # counted as spent before the window frees a slot, so the budget check of the next request sees it
                cost = self._usage(body)[2]
                self._unflushed_cost += cost
                self._count(cost_usd=cost)
                wait_after_release = None
            finally:
                self._window.release()
            if wait_after_release is None:
                break
            await asyncio.sleep(wait_after_release)
        return await self._store(messages, indices, max_tokens, body, latency, attempts)

    async def _spend_only(self, body: dict) -> None:
        """A billed answer that is not a trace: its cost goes into the ledger and the cache, never its text."""
        cost = self._usage(body)[2] if body.get("usage") else 0.0
        if cost <= 0:
            return
        self._unflushed_cost += cost
        self._count(cost_usd=cost)
        assert self._writer is not None
        await self._writer.put(f"spend:{uuid.uuid4().hex}", {"spend_only": True, "cost_usd": cost,
                                                              "created": time.time()})

    async def _store_verdict(self, messages: list, index: int, max_tokens: int, exc: _Permanent,
                             attempts: int) -> dict:
        """Cache a permanent verdict (a 400, a moderation flag) under the request's key, so a re-run keeps it."""
        assert self._writer is not None
        record = failure_record(self.teacher.model, index, max_tokens, exc.kind, str(exc), exc.detail, attempts)
        key = request_key(self.teacher.cache_url, self.teacher.model, messages,
                          sampling_for(self.teacher, max_tokens), index)
        await self._writer.put(key, record)
        return record

    def _backoff(self, attempt: int) -> float:
        base = float(self.teacher.retry_base_delay_s)
        cap = float(self.teacher.retry_max_delay_s)
        return self._rng.uniform(0, min(cap, base * 2 ** (attempt - 1)))

    def _usage(self, body: dict) -> tuple[int, int, float, str]:
        """(prompt tokens, completion tokens, cost, where the cost came from) of a response."""
        usage = body.get("usage") or {}
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        completion_total = int(usage.get("completion_tokens") or 0)
        reported_cost = usage.get("cost")
        if isinstance(reported_cost, (int, float)) and not isinstance(reported_cost, bool):
            return prompt_tokens, completion_total, float(reported_cost), "provider"
        price = self.teacher.price
        cost = (prompt_tokens * price["input_per_mtok"] + completion_total * price["output_per_mtok"]) / 1e6
        return prompt_tokens, completion_total, cost, "price_table"

    async def _store(self, messages: list, indices: list[int], max_tokens: int, body: dict, latency: float,
                     attempts: int) -> list[dict]:
        prompt_tokens, completion_total, cost_total, cost_source = self._usage(body)
        choices = sorted(body["choices"], key=lambda c: c.get("index", 0))[: len(indices)]
        parsed = [parse_message(c["message"]) for c in choices]
        lengths = [len(r) + len(c) for r, c, _ in parsed]
        total_len = sum(lengths) or 1
        sampling = sampling_for(self.teacher, max_tokens)
        records = []
        for pos, (choice, (reasoning, content, encrypted)) in enumerate(zip(choices, parsed, strict=True)):
            share = lengths[pos] / total_len if len(choices) > 1 else 1.0
            record = {
                "model": self.teacher.model, "sample_index": indices[pos], "max_tokens": max_tokens,
                "content": content, "reasoning": reasoning, "finish_reason": str(choice.get("finish_reason") or ""),
                "reasoning_encrypted": encrypted,
                "prompt_tokens": prompt_tokens, "completion_tokens": round(completion_total * share),
                "cost_usd": cost_total * share, "cost_source": cost_source,
                "response_id": str(body.get("id") or ""), "latency_s": round(latency, 4), "attempts": attempts,
                "created": time.time(),
            }
            verdict = classify_choice(choice, self.teacher)
            if verdict is not None and not verdict[1]:
                # one bad choice of n: the others are kept; this sample is asked for again by a re-run
                await self._writer.put(f"spend:{uuid.uuid4().hex}", {"spend_only": True, "cost_usd": cost_total
                                                                      * share, "created": time.time()})
                records.append(f"{verdict[0]}: the answer is not a trace")
                continue
            if verdict is not None:
                record.update(failure=verdict[0], failure_detail=f"finish_reason {record['finish_reason']!r}, "
                              f"{len(content)} characters of content, {len(reasoning)} of reasoning")
            key = request_key(self.teacher.cache_url, self.teacher.model, messages,
                              sampling, indices[pos])
            await self._writer.put(key, record)
            records.append(record)
        missing = len(indices) - len(choices)
        for _ in range(missing):  # a provider that ignored n: those samples are asked for again later
            records.append(None)
        self._count(paid=1, prompt_tokens=prompt_tokens, completion_tokens=completion_total)
        if completion_total:
            self._avg_completion = 0.9 * self._avg_completion + 0.1 * completion_total / max(1, len(choices))
        if self.limiter is not None and self.teacher.max_tokens_per_minute:
            estimate = (self._avg_completion + 200) * 1
            asyncio.ensure_future(_call(self.limiter, "adjust_tokens", prompt_tokens + completion_total - estimate))
        return records

    # -- one work item ------------------------------------------------------------------------------------------
    async def _samples(self, messages: list, indices: list[int], max_tokens: int,
                       in_one: bool) -> dict[int, dict | str]:
        """index -> record, or index -> error string."""
        out: dict[int, dict | str] = {}
        if not indices:
            return out
        groups = [indices] if in_one and len(indices) > 1 else [[i] for i in indices]

        async def run(group: list[int]) -> None:
            try:
                records = await self._request(messages, group, max_tokens)
            except _BudgetStop as stop:
                for i in group:
                    out[i] = STOP_REASONS.get(str(stop), f"{stop}: not sent")
                return
            except _GaveUp as exc:
                for i in group:
                    out[i] = f"{exc.kind}: {exc}"
                return
            except FatalTeacherError as exc:
                # a refused key stops new requests like a 402 does; the requests already admitted finish and are
                # stored, and the driver raises this once the output is written
                self._delta_errors["fatal"] += 1
                self._fatal_message = self._fatal_message or str(exc)
                self._stopped = self._stop_to_send = "fatal"
                for i in group:
                    out[i] = f"fatal: {exc}"
                return
            for i, record in zip(group, records, strict=True):
                out[i] = record if record is not None else "fewer_choices: provider returned fewer choices than n"

        await asyncio.gather(*(run(g) for g in groups))
        return out

    async def _item(self, item: TeacherWorkItem) -> list[TraceRow]:
        problem = item["problem"]
        messages = messages_for(problem["prompt"])
        max_tokens = int(self.teacher.sampling["max_tokens"])
        results: dict[int, dict | str] = {s["index"]: s["base"] for s in item["samples"] if s.get("base") is not None}
        sent = [s["index"] for s in item["samples"] if s.get("base") is None]
        results.update(await self._samples(messages, sent, max_tokens, bool(self.teacher.n_in_one_request)))
        retried: dict[int, dict | str] = {}
        need: list[int] = []
        bigger = int(self.teacher.retry_max_tokens_cap)
        if self.teacher.truncation_policy == "retry" and bigger > max_tokens:
            for sample in item["samples"]:
                record = results.get(sample["index"])
                if isinstance(record, dict) and record["finish_reason"] == "length":
                    if sample.get("retry") is not None:
                        retried[sample["index"]] = sample["retry"]
                    else:
                        need.append(sample["index"])
            # one by one: the larger request is a new request, and `n` would re-pay samples that were fine
            retried.update(await self._samples(messages, need, bigger, in_one=False))
        rows = []
        for sample in item["samples"]:
            index = sample["index"]
            record = results.get(index, "not attempted")
            if isinstance(retried.get(index), dict):
                record = retried[index]
            from_cache = index not in sent and index not in need
            rows.append(build_row(self.teacher, problem, index, record, from_cache=from_cache))
        return rows

    async def process(self, items: list[TeacherWorkItem]) -> list[TraceRow]:
        """Answer work items; returns one Trace row per (problem, sample) of the items, in order."""
        self._setup()
        if self.ledger is not None and self._flusher is None:
            self._flusher = asyncio.ensure_future(self._flush_loop())
        rows = await asyncio.gather(*(self._item(item) for item in items))
        return [row for item_rows in rows for row in item_rows]


def _root(exc: BaseException) -> BaseException:
    seen = 0
    while (exc.__cause__ or exc.__context__) is not None and seen < 10:
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]
        seen += 1
    return exc


def _disconnected(exc: BaseException) -> bool:
    """True when a 'timeout' was really the peer closing the connection (not a slow or hung provider)."""
    name = type(_root(exc)).__name__
    return name in ("ServerDisconnectedError", "ClientOSError", "ClientPayloadError", "ConnectionResetError",
                    "RemoteProtocolError", "ClientConnectionResetError")


def _short(exc: Exception) -> str:
    return str(getattr(exc, "message", None) or exc)[:200]


def _error_object(exc: Any) -> dict:
    """The `error` object of an HTTP error answer ({} when there is none)."""
    body = getattr(exc, "body", None)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    return body if isinstance(body, dict) else {}


def _status_error(teacher: TeacherSpec, exc: Any) -> Exception:
    """What an HTTP error status means for this request, this row and the run."""
    status = exc.status_code
    name = teacher.name
    error = _error_object(exc)
    metadata = error.get("metadata") if isinstance(error.get("metadata"), dict) else {}
    retry_after = _retry_after(exc.response.headers)
    message = f"HTTP {status}: {_short(exc)}"
    if status == 401:
        return FatalTeacherError(f"teacher {name!r}: the provider refused the API key ({message}); check "
                                 f"{key_source(teacher)}")
    if status == 402:
        if retry_after is not None:  # OpenRouter's in-flight spending budget: wait for requests in flight to settle
            return _Retryable("402_in_flight", message, retry_after)
        return _CreditsStop(f"{message}; add credits (or raise the key's limit) and run again")
    if status == 403:
        if "reasons" in metadata or "flagged_input" in metadata:
            detail = {"reasons": metadata.get("reasons"), "flagged_input": metadata.get("flagged_input")}
            return _Permanent("moderation", f"input flagged by moderation, reasons {metadata.get('reasons')}", detail)
        return FatalTeacherError(f"teacher {name!r}: the provider refused the request ({message}); check the key's "
                                 f"permissions ({key_source(teacher)})")
    if status == 429:
        return _Retryable("429", _short(exc), retry_after)
    if status == 408 or status >= 500:
        return _Retryable("5xx" if status >= 500 else "408", message, retry_after)
    if status == 400:
        return _Permanent("invalid_request", message)
    return _Permanent(f"http_{status}", message)
