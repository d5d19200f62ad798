"""The built-in simulated teacher: an OpenAI-compatible chat server with fault injection and billing counters.

    from distill_ray.teacher import start_teacher_server
    handle = start_teacher_server(teachers={"sim/concise": {"style": "concise", "correct_rate": 0.75}})
    handle.base_url            # "http://127.0.0.1:PORT/v1", for any OpenAI client
    handle.counters()          # requests, statuses, faults, billed responses per request key
    handle.stop()

`distill-ray teacher-server` runs the same server in the foreground. `start_teacher_server(..., process=True)` runs it
in a child process (so a benchmark's client and server do not share one interpreter), with counters read over HTTP
(`GET /admin/counters`).

Routes: `POST /v1/chat/completions`, `GET /v1/models`, `GET /admin/counters`, `POST /admin/reset`; with the
`openrouter` behaviour profile (`profile={...}`, see `openrouter_sim.py`) also `GET /v1/key` and `POST /admin/credits`;
and OpenRouter's batch endpoints under `/v1/batches` (`batch_sim.py`; options in the profile's `batches`).
Answers come from
`simulated_response`, keyed by the request's content (model, messages, temperature, top_p) and the sample index, so
the same request always gets the same answer. The sample index is read from the `X-Distill-Sample-Index` header (the
generate stage sends it), else from `seed`, else 0; with `n` > 1, choice i has index base + i. Each teacher returns its
reasoning in one provider's format: `reasoning` (OpenRouter), `reasoning_content` (DeepSeek) or `think` (inline
`<think>…</think>` at the start of the content, as some R1 deployments do). Tokens are counted as ceil(chars / 4).

A response is *billed* when a complete, well-formed 200 body has been handed to the socket; `counters()["billed"]`
maps each billing key (request content incl. max_tokens, and sample index) to how many times it was billed, which is
how tests prove that nothing was paid twice. 429s, 5xx, hangs, dropped connections and malformed bodies are not billed.

The HTTP layer is a small asyncio protocol (HTTP/1.1, keep-alive, Content-Length bodies, no chunked requests, no
streaming responses): enough for the `openai` client and light enough to serve hundreds of requests per second on one
core. It is a test fixture, not a production server: it binds only to loopback addresses and trusts its clients.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import os
import random
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from dataclasses import asdict, dataclass, fields
from typing import Any

from distill_ray.builtin_problems import simulated_response
from distill_ray.teacher.batch_sim import BatchSim
from distill_ray.teacher.openrouter_sim import OpenRouterProfile

SAMPLE_INDEX_HEADER = "x-distill-sample-index"
CHARS_PER_TOKEN = 4
REASONING_FORMATS = ("reasoning", "reasoning_content", "think")
_LOOPBACK = ("127.0.0.1", "localhost", "::1")
_REASONS = {200: "OK", 202: "Accepted", 409: "Conflict",
            400: "Bad Request", 401: "Unauthorized", 402: "Payment Required", 403: "Forbidden",
            404: "Not Found", 405: "Method Not Allowed",
            429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}


@dataclass
class Faults:
    """What goes wrong, and how often. Rates are per request, drawn independently of the request's content."""

    latency_s: float = 0.0  # mean time to answer
    latency_jitter_s: float = 0.0  # uniform: latency_s ± jitter; exponential/lognormal: ignored
    latency_dist: str = "fixed"  # fixed | uniform | exponential | lognormal (sigma 0.5)
    rate_limit_rps: float | None = None  # requests/s accepted (token bucket); excess answered 429 with Retry-After
    rate_limit_burst: float = 1.0  # bucket size in requests
    error_rate: float = 0.0  # answered 500/502/503 after the latency
    hang_rate: float = 0.0  # never answered (the connection stays open for hang_s)
    hang_s: float = 600.0
    drop_rate: float = 0.0  # connection closed without an answer
    malformed_rate: float = 0.0  # 200 with a body that is not JSON
    truncate_rate: float = 0.0  # completion cut at half its length, finish_reason "length" (billed)
    seed: int = 0

    @classmethod
    def from_any(cls, value: Faults | dict | None) -> Faults:
        if value is None:
            return cls()
        if isinstance(value, Faults):
            return value
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown fault option(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**value)


@dataclass
class SimTeacher:
    style: str  # "concise" | "verbose"
    correct_rate: float
    reasoning_format: str = ""  # one of REASONING_FORMATS; "" picks by style (concise: reasoning, verbose: think)
    price_in_per_mtok: float = 1.0  # simulated price, reported as usage.cost
    price_out_per_mtok: float = 4.0
    pad_chars: int = 0  # > 0: reasoning padded to this many characters (long traces for memory benchmarks)

    def __post_init__(self) -> None:
        if not self.reasoning_format:
            self.reasoning_format = "reasoning" if self.style == "concise" else "think"
        if self.reasoning_format not in REASONING_FORMATS:
            raise ValueError(f"reasoning_format must be one of {REASONING_FORMATS}, not {self.reasoning_format!r}")
        if self.style not in ("concise", "verbose"):
            raise ValueError(f"style must be 'concise' or 'verbose', not {self.style!r}")


DEFAULT_TEACHERS = {
    "sim/concise": {"style": "concise", "correct_rate": 0.75},
    "sim/verbose": {"style": "verbose", "correct_rate": 0.5},
}


def count_tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def content_key(model: str, messages: Any, temperature: Any, top_p: Any) -> str:
    """What decides the simulated answer: everything but max_tokens and the sample index."""
    blob = json.dumps([model, messages, temperature, top_p], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def billing_key(model: str, messages: Any, temperature: Any, top_p: Any, max_tokens: Any, sample_index: int,
                reasoning: Any = None) -> str:
    """What a provider charges for once: the full request (reasoning object included when sent) and the sample."""
    parts = [model, messages, temperature, top_p, max_tokens] + ([reasoning] if reasoning is not None else [])
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return f"{hashlib.sha256(blob.encode()).hexdigest()[:24]}:{sample_index}"


def _user_text(messages: list) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content", "")
            if isinstance(content, list):  # content parts
                return "".join(p.get("text", "") for p in content if isinstance(p, dict))
            return str(content)
    return ""


def _cut(reasoning: str, content: str, max_tokens: int) -> tuple[str, str, bool]:
    """Cut reasoning+content to max_tokens (reasoning first, as a model emits it); True when something was cut."""
    budget = max_tokens * CHARS_PER_TOKEN
    if len(reasoning) + len(content) <= budget:
        return reasoning, content, False
    if len(reasoning) >= budget:
        return reasoning[:budget], "", True
    return reasoning, content[: budget - len(reasoning)], True


class _Counters:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = 0
        self.status: Counter = Counter()
        self.faults: Counter = Counter()
        self.billed: Counter = Counter()
        self.billed_cost = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.first_request_at = 0.0  # wall clock, for throughput measured at the server
        self.last_response_at = 0.0

    def snapshot(self) -> dict:
        with self.lock:
            return {
                "requests": self.requests, "status": {str(k): v for k, v in self.status.items()},
                "faults": dict(self.faults), "billed": dict(self.billed), "billed_responses": sum(self.billed.values()),
                "billed_cost_usd": self.billed_cost, "max_in_flight": self.max_in_flight, "in_flight": self.in_flight,
                "first_request_at": self.first_request_at, "last_response_at": self.last_response_at,
            }


class TeacherServer:
    """The server's state and request handling; `serve()` runs it on the current event loop."""

    def __init__(self, teachers: dict[str, dict] | None = None, faults: Faults | dict | None = None,
                 api_key: str | None = None, profile: OpenRouterProfile | dict | None = None):
        self.teachers = {name: SimTeacher(**spec) for name, spec in (teachers or DEFAULT_TEACHERS).items()}
        self.faults = Faults.from_any(faults)
        self.profile = OpenRouterProfile.from_any(profile)
        self.api_key = api_key  # None: any key (or none) is accepted
        self.rng = random.Random(self.faults.seed)
        self.counters = _Counters()
        self._bucket = float(self.faults.rate_limit_burst)
        self._bucket_t = time.monotonic()
        self._not_before: dict[str, float] = {}  # billing key -> the earliest retry its 429 allowed
        self.batches = BatchSim(self, self.profile.batches if self.profile is not None else None)

    # -- faults -------------------------------------------------------------------------------------------------
    def _latency(self) -> float:
        f = self.faults
        if f.latency_dist == "uniform":
            return max(0.0, f.latency_s + self.rng.uniform(-f.latency_jitter_s, f.latency_jitter_s))
        if f.latency_dist == "exponential":
            return self.rng.expovariate(1.0 / f.latency_s) if f.latency_s > 0 else 0.0
        if f.latency_dist == "lognormal":
            # median scaled so that the mean is latency_s
            return f.latency_s * math.exp(self.rng.gauss(0.0, 0.5) - 0.125) if f.latency_s > 0 else 0.0
        return f.latency_s

    def _rate_limited(self) -> float | None:
        """None when admitted; else the seconds until a request would be (the Retry-After)."""
        rate = self.faults.rate_limit_rps
        if not rate:
            return None
        now = time.monotonic()
        self._bucket = min(float(self.faults.rate_limit_burst), self._bucket + (now - self._bucket_t) * rate)
        self._bucket_t = now
        if self._bucket >= 1.0:
            self._bucket -= 1.0
            return None
        return (1.0 - self._bucket) / rate

    def _draw_fault(self) -> str:
        f = self.faults
        r = self.rng.random()
        for name, rate in (("error", f.error_rate), ("hang", f.hang_rate), ("drop", f.drop_rate),
                           ("malformed", f.malformed_rate)):
            if r < rate:
                return name
            r -= rate
        return ""

    # -- handling -----------------------------------------------------------------------------------------------
    async def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> tuple | None:
        """Returns (status, extra headers, body bytes, billing keys, cost), or None to drop the connection."""
        path, _, query_text = path.partition("?")
        path = path.rstrip("/")
        if path == "/admin/counters" and method == "GET":
            return 200, {}, json.dumps(self.counters.snapshot()).encode(), (), 0.0
        if path == "/admin/reset" and method == "POST":
            with self.counters.lock:
                self.counters.reset()
            return 200, {}, b"{}", (), 0.0
        if self.profile is not None and path.endswith("/admin/credits") and method == "POST":
            self.profile.spend_limit_usd = json.loads(body or b"{}").get("spend_limit_usd")
            return 200, {}, b"{}", (), 0.0
        if self.api_key is not None and headers.get("authorization", "") != f"Bearer {self.api_key}":
            return _error(401, "invalid api key", "authentication_error")
        if self.profile is not None and path.endswith("/key") and method == "GET":
            with self.counters.lock:
                billed = self.counters.billed_cost
            return 200, {}, self.profile.key_response(billed), (), 0.0
        if "/batches" in path:  # the batch endpoints (batch_sim.py)
            query = dict(p.partition("=")[::2] for p in query_text.split("&") if p)
            return self.batches.handle(method, path, query, body)
        if path.endswith("/models") and method == "GET":
            data = [{"id": name, "object": "model", "owned_by": "distill-ray"} for name in self.teachers]
            return 200, {}, json.dumps({"object": "list", "data": data}).encode(), (), 0.0
        if not path.endswith("/chat/completions"):
            return _error(404, f"no route {path}", "not_found")
        if method != "POST":
            return _error(405, "use POST", "invalid_request_error")
        try:
            request = json.loads(body)
            model = request["model"]
            messages = request["messages"]
            if not isinstance(messages, list):
                raise TypeError("messages must be a list")
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"bad request body: {exc}", "invalid_request_error")
        teacher = self.teachers.get(model)
        if teacher is None:
            return _error(404, f"unknown model {model!r}; served: {', '.join(self.teachers)}", "not_found")
        with self.counters.lock:
            if not self.counters.first_request_at:  # completions only: GET /models is not throughput
                self.counters.first_request_at = time.time()
        if request.get("stream"):
            return _error(400, "streaming is not supported by the simulated teacher", "invalid_request_error")

        try:
            first_index = int(headers.get(SAMPLE_INDEX_HEADER, request.get("seed") or 0))
        except ValueError:
            first_index = 0
        max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
        arrival_key = billing_key(model, messages, request.get("temperature"), request.get("top_p"), max_tokens,
                                  first_index, request.get("reasoning"))
        now = time.monotonic()
        not_before = self._not_before.pop(arrival_key, None)
        if not_before is not None and now < not_before - 0.002:
            with self.counters.lock:  # a client that retried sooner than the Retry-After it was given
                self.counters.faults["early_retry"] += 1
        if self.profile is not None:
            with self.counters.lock:
                billed = self.counters.billed_cost
            early = self.profile.before(request, _user_text(messages), arrival_key, billed)
            if early is not None:
                with self.counters.lock:
                    self.counters.faults[f"openrouter_{early[0]}"] += 1
                if "Retry-After" in early[1]:
                    self._not_before[arrival_key] = now + float(early[1]["Retry-After"])
                return (*early, (), 0.0)
        wait = self._rate_limited()
        if wait is not None:
            retry_ms = max(1, math.ceil(wait * 1000))
            self._not_before[arrival_key] = now + retry_ms / 1000
            status, extra, payload, _, _ = _error(429, "rate limit exceeded", "rate_limit_exceeded")
            extra = {"Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(retry_ms)}
            return status, extra, payload, (), 0.0

        fault = self._draw_fault()
        if fault:
            with self.counters.lock:
                self.counters.faults[fault] += 1
        if fault == "hang":
            await asyncio.sleep(self.faults.hang_s)
            return None
        delay = self._latency()
        if delay > 0:
            await asyncio.sleep(delay)
        if fault == "drop":
            return None
        if fault == "error":
            code = self.rng.choice((500, 502, 503))
            return _error(code, "simulated upstream failure", "server_error")
        if fault == "malformed":
            return 200, {}, b'{"id": "chatcmpl-broken", "choices": [{"index": 0, "message": {"role": "assis', (), 0.0
        return self._complete(teacher, request, headers, truncate=self.rng.random() < self.faults.truncate_rate)

    def _complete(self, teacher: SimTeacher, request: dict, headers: dict, truncate: bool) -> tuple:
        model, messages = request["model"], request["messages"]
        temperature, top_p = request.get("temperature"), request.get("top_p")
        max_tokens = request.get("max_completion_tokens") or request.get("max_tokens")
        n = int(request.get("n") or 1)
        try:
            base_index = int(headers.get(SAMPLE_INDEX_HEADER, request.get("seed") or 0))
        except ValueError:
            base_index = 0
        user = _user_text(messages)
        ckey = content_key(model, messages, temperature, top_p)
        prompt_tokens = count_tokens("".join(json.dumps(m) for m in messages))
        choices, keys, completion_tokens, reasoning_tokens = [], [], 0, 0
        reasons, returned = self.profile.returns_reasoning(request) if self.profile is not None else (True, True)
        for i in range(n):
            index = base_index + i
            answer = simulated_response(user, teacher.style, teacher.correct_rate, f"{ckey}:{index}")
            if answer is None:
                answer = ("This is not one of the built-in problems, so I answer briefly.",
                          "I can only solve the built-in problem families.")
            reasoning, content = answer
            if teacher.pad_chars > len(reasoning):
                filler = " Checking the step once more." * (teacher.pad_chars // 29 + 1)
                reasoning = (reasoning + filler)[: teacher.pad_chars]
            if not reasons:
                reasoning = ""
            finish = "stop"
            if truncate:
                half = max(1, count_tokens(reasoning + content) // 2)
                reasoning, content, _ = _cut(reasoning, content, half)
                finish = "length"
            if max_tokens:
                reasoning, content, cut = _cut(reasoning, content, int(max_tokens))
                finish = "length" if cut else finish
            outcome = self.profile.outcome(user, f"{ckey}:{index}") if self.profile is not None else ""
            if outcome:
                content = ""
                finish = "content_filter" if outcome == "content_filter" else finish
            completion_tokens += count_tokens(reasoning + content)
            reasoning_tokens += count_tokens(reasoning)
            message: dict[str, Any] = {"role": "assistant"}
            if self.profile is not None:
                message = self.profile.message(reasoning, content, returned)
            elif teacher.reasoning_format == "think":
                # an open <think> with no close when the cut fell inside the reasoning, as a real model would leave it
                closed = "</think>\n\n" if (content or finish == "stop") else ""
                message["content"] = f"<think>\n{reasoning}\n{closed}{content}" if reasoning else content
            else:
                message["content"] = content
                message[teacher.reasoning_format] = reasoning
            choices.append({"index": i, "message": message, "finish_reason": finish, "logprobs": None})
            keys.append(billing_key(model, messages, temperature, top_p, max_tokens, index, request.get("reasoning")))
        cost = (prompt_tokens * teacher.price_in_per_mtok + completion_tokens * teacher.price_out_per_mtok) / 1e6
        body = {
            "id": f"chatcmpl-{hashlib.sha256(f'{ckey}:{base_index}:{max_tokens}'.encode()).hexdigest()[:20]}",
            "object": "chat.completion", "created": int(time.time()), "model": model, "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens, "cost": round(cost, 10),
                      "completion_tokens_details": {"reasoning_tokens": reasoning_tokens}},
        }
        return 200, {}, json.dumps(body).encode(), tuple(keys), cost

    def record(self, status: int | None, keys: tuple, cost: float) -> None:
        with self.counters.lock:
            self.counters.status[status if status is not None else "dropped"] += 1
            for key in keys:
                self.counters.billed[key] += 1
            self.counters.billed_cost += cost
            self.counters.last_response_at = time.time()


def _error(status: int, message: str, kind: str) -> tuple:
    body = json.dumps({"error": {"message": message, "type": kind, "code": status}}).encode()
    return status, {}, body, (), 0.0


class _HttpProtocol(asyncio.Protocol):
    """HTTP/1.1 with keep-alive, one request at a time per connection (what the openai/httpx client does)."""

    def __init__(self, server: TeacherServer):
        self.server = server
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.busy = False
        self.task: asyncio.Task | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.task is not None and not self.task.done():
            self.task.cancel()  # a client gave up (timeout): stop the hang or the wait

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.busy:
            self._next()

    def _next(self) -> None:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(self.buffer) > 65536 and self.transport is not None:
                self.transport.close()
            return
        lines = self.buffer[:head_end].decode("latin-1").split("\r\n")
        try:
            method, target, _version = lines[0].split(" ", 2)
        except ValueError:
            if self.transport is not None:
                self.transport.close()
            return
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0") or 0)
        if len(self.buffer) < head_end + 4 + length:
            return  # wait for the rest of the body
        body = self.buffer[head_end + 4: head_end + 4 + length]
        self.buffer = self.buffer[head_end + 4 + length:]
        self.busy = True
        self.task = asyncio.ensure_future(self._respond(method, target, headers, body))

    async def _respond(self, method: str, target: str, headers: dict, body: bytes) -> None:
        server = self.server
        if target.startswith("/admin/"):  # the test harness reading counters is not traffic
            status, _, payload, _, _ = await server.handle(method, target, headers, body)
            if self.transport is not None:
                self.transport.write(f"HTTP/1.1 {status} OK\r\nContent-Type: application/json\r\nContent-Length: "
                                     f"{len(payload)}\r\n\r\n".encode() + payload)
            self.busy = False
            if self.buffer:
                self._next()
            return
        with server.counters.lock:
            server.counters.requests += 1
            server.counters.in_flight += 1
            server.counters.max_in_flight = max(server.counters.max_in_flight, server.counters.in_flight)
        result = None
        try:
            result = await server.handle(method, target, headers, body)
        except asyncio.CancelledError:
            result = None
        except Exception as exc:  # a bug in the simulator must not kill the connection loop silently
            result = _error(500, f"simulator error: {exc!r}", "server_error")
        finally:
            with server.counters.lock:
                server.counters.in_flight -= 1
        transport = self.transport
        if result is None or transport is None or transport.is_closing():
            server.record(None, (), 0.0)
            if transport is not None:
                transport.abort()  # a dropped connection: no status line, no body
            return
        status, extra, payload, keys, cost = result
        head = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}", "Content-Type: application/json",
                f"Content-Length: {len(payload)}"]
        head += [f"{k}: {v}" for k, v in extra.items()]
        server.record(status, keys, cost)  # before the write, so a client never sees an answer not yet counted
        transport.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        self.busy = False
        if self.buffer:
            self._next()


class ServerHandle:
    """A running server: its URL, its counters, and how to stop it."""

    def __init__(self, base_url: str, stop: Any, counters: Any):
        self.base_url = base_url
        self._stop = stop
        self._counters = counters

    def counters(self) -> dict:
        """{"requests", "status": {code: n}, "faults": {kind: n}, "billed": {key: n}, "billed_responses", ...}."""
        return self._counters()

    def billed(self, key: str | None = None) -> int:
        """How many times the billing key was billed (all billed responses when key is None)."""
        snapshot = self.counters()
        return snapshot["billed_responses"] if key is None else snapshot["billed"].get(key, 0)

    def duplicates(self) -> dict[str, int]:
        """Billing keys paid more than once (the thing the generate stage promises never to cause)."""
        return {k: v for k, v in self.counters()["billed"].items() if v > 1}

    def set_spend_limit(self, dollars: float | None) -> None:
        """The openrouter profile's credit limit (a top-up raises it)."""
        host = self.base_url.rsplit("/v1", 1)[0]
        data = json.dumps({"spend_limit_usd": dollars}).encode()
        urllib.request.urlopen(urllib.request.Request(f"{host}/admin/credits", method="POST", data=data), timeout=10)

    def reset(self) -> None:
        host = self.base_url.rsplit("/v1", 1)[0]
        urllib.request.urlopen(urllib.request.Request(f"{host}/admin/reset", method="POST", data=b""), timeout=10)

    def stop(self) -> None:
        self._stop()

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


async def serve(server: TeacherServer, host: str, port: int) -> asyncio.AbstractServer:
    if host not in _LOOPBACK:
        raise ValueError(f"the simulated teacher binds only to loopback addresses, not {host!r}")
    loop = asyncio.get_running_loop()
    return await loop.create_server(lambda: _HttpProtocol(server), host, port, backlog=4096, reuse_address=True)


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}/v1" if ":" in host else f"http://{host}:{port}/v1"


def start_teacher_server(host: str = "127.0.0.1", port: int = 0, teachers: dict[str, dict] | None = None,
                         faults: Faults | dict | None = None, *, api_key: str | None = None,
                         process: bool = False, profile: dict | None = None) -> ServerHandle:
    """Start the simulated teacher in a background thread (or a child process with `process=True`).

    `profile`: options of the `openrouter` behaviour profile (`openrouter_sim.OpenRouterProfile`); None: plain.
    """
    if process:
        return _start_process(host, port, teachers, faults, api_key, profile)
    server = TeacherServer(teachers, faults, api_key, profile)
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["server"] = loop.run_until_complete(serve(server, host, port))
        except Exception as exc:  # surfaced to the caller below
            ready["error"] = exc
            started.set()
            return
        started.set()
        loop.run_forever()
        ready["server"].close()
        for task in asyncio.all_tasks(loop):
            task.cancel()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()

    thread = threading.Thread(target=run, name="distill-ray-teacher-server", daemon=True)
    thread.start()
    started.wait(30)
    if "error" in ready:
        raise ready["error"]
    bound_port = ready["server"].sockets[0].getsockname()[1]

    def stop() -> None:
        if loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)

    return ServerHandle(_url(host, bound_port), stop, server.counters.snapshot)


def _start_process(host: str, port: int, teachers: dict | None, faults: Faults | dict | None,
                   api_key: str | None, profile: dict | None = None) -> ServerHandle:
    fault_dict = asdict(Faults.from_any(faults))
    argv = [sys.executable, "-m", "distill_ray.teacher.cli", "teacher-server", "--host", host, "--port", str(port),
            "--teachers", json.dumps(teachers or DEFAULT_TEACHERS), "--faults", json.dumps(fault_dict)]
    if profile is not None:
        argv += ["--openrouter-profile", json.dumps(profile)]
    env = dict(os.environ)
    if api_key is not None:
        env["DISTILL_RAY_SIM_API_KEY"] = api_key
        argv += ["--api-key-env", "DISTILL_RAY_SIM_API_KEY"]
    child = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, env=env)
    line = child.stdout.readline() if child.stdout else ""
    if not line.startswith("listening "):
        child.kill()
        raise RuntimeError(f"teacher server process did not start: {line!r}")
    base_url = line.split()[1]
    root = base_url.rsplit("/v1", 1)[0]

    def counters() -> dict:
        with urllib.request.urlopen(f"{root}/admin/counters", timeout=30) as response:
            return json.loads(response.read())

    def stop() -> None:
        if child.poll() is None:
            child.terminate()
            try:
                child.wait(10)
            except subprocess.TimeoutExpired:
                child.kill()

    return ServerHandle(base_url, stop, counters)


def run_forever(host: str, port: int, teachers: dict | None, faults: Faults | dict | None,
                api_key: str | None, profile: dict | None = None) -> None:
    """Serve in the foreground until interrupted; prints `listening URL` first (the child-process handshake)."""
    server = TeacherServer(teachers, faults, api_key, profile)

    async def main() -> None:
        listener = await serve(server, host, port)
        print(f"listening {_url(host, listener.sockets[0].getsockname()[1])}", flush=True)
        async with listener:
            await listener.serve_forever()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass


def server_teachers_from_config(teachers: dict[str, Any]) -> dict[str, dict]:
    """The server's teacher table from a sweep's builtin TeacherConfigs (keyed by their model names)."""
    table: dict[str, dict] = {}
    for config in teachers.values():
        if getattr(config, "provider", None) == "builtin":
            table[config.model] = {"style": config.style, "correct_rate": config.correct_rate}
    return table


__all__ = ["DEFAULT_TEACHERS", "Faults", "ServerHandle", "TeacherServer", "billing_key", "content_key",
           "count_tokens", "run_forever", "server_teachers_from_config", "start_teacher_server"]
