"""The simulated teacher's batch endpoints, shaped after OpenRouter's Batch API.

    start_teacher_server(teachers=..., profile={"batches": {"complete_after_s": 0.2, "request_error_rate": 0.1}})

Behaviour read from OpenRouter's documentation (openrouter.ai/docs/guides/features/batch-api, the Batch quickstart
openrouter.ai/docs/batch-quickstart and the API reference pages "Get a batch", "List batches", "Get batch results",
"Delete a batch" under openrouter.ai/docs/api/api-reference/batch/):

- `POST /v1/batches` with `model`, `endpoint` ("/v1/chat/completions"), an inline `requests` array of
  `{"custom_id", "body"}`, optional `metadata` and `completion_window` ("24h") answers **202** with the batch object
  in status `validating`. One model per batch; at most 5,000 requests and 200 MB (`max_requests`, `max_bytes`; over
  that: 400). A custom_id repeated in one batch: 400.
- `GET /v1/batches/{id}`: the batch with `status` (validating → in_progress → completed | failed | expired), and
  `request_counts` (`total`, `completed`, `failed`); a batch in a terminal status carries `results` inline.
- `GET /v1/batches/{id}/results?cursor=&limit=`: the results of a finished batch, cursor-paginated
  (`data`, `next_cursor`).
- `GET /v1/batches?limit=&after=`: batches newest first, metadata only (`results` is null), with `has_more` and
  `last_id` for paging. How a client finds a batch whose id it lost: by the `metadata` it submitted.
- `DELETE /v1/batches/{id}`: a batch in a terminal status (its stored results go; billing stays); else **409**.
  OpenRouter documents no cancel endpoint, so none is simulated.
- Each result has exactly one of `response` (here: the chat completion body, as the online endpoint answers it) and
  `error` (`{"code", "message"}`); a `completed` batch can hold failed requests (`request_error_rate`).
- Price: "typically 50% of the sync per-token price" (`price_factor`); each answer's `usage.cost` is at that price,
  and only answered requests are billed (they count in the server's `billed` counters under the same billing key
  as an online answer, so a request paid once online and once in a batch shows as paid twice).
- Turnaround: a batch finishes `complete_after_s` after it was created (the guide: within 24 hours, most in
  minutes). With `expire_after_s` below that, the batch ends `expired` at that time with only the first
  share of its requests answered (time elapsed / time needed, rounded up) and billed, the rest without a result line, as
  OpenAI's Batch FAQ describes for an expired batch (completed work is returned and charged).
- `validation_error_prompts`: a batch holding a request whose prompt contains one of them ends `failed` with
  `error.message` (OpenRouter validates after the 202).

The sample index of a request comes from its custom_id when it has the form `s<index>-...` (the generate stage's
convention, the batch counterpart of the online `X-Distill-Sample-Index` header), else from the body's `seed`.
Not simulated: webhooks (`callback_url`), the 30-day retention window, endpoints other than chat completions,
per-provider batch limits, rate limits on the batch endpoints themselves.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

BATCH_ENDPOINT = "/v1/chat/completions"
TERMINAL = ("completed", "failed", "expired", "cancelled")


@dataclass
class BatchOptions:
    complete_after_s: float = 0.2
    validate_s: float = 0.0  # time spent in `validating` before `in_progress`
    expire_after_s: float | None = None
    request_error_rate: float = 0.0
    price_factor: float = 0.5
    max_requests: int = 5000
    max_bytes: int = 200_000_000
    validation_error_prompts: list[str] = field(default_factory=list)

    @classmethod
    def from_any(cls, value: BatchOptions | dict | None) -> BatchOptions:
        if isinstance(value, BatchOptions):
            return value
        value = value or {}
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown batch simulator option(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**value)


def _json(status: int, data: Any) -> tuple:
    return status, {}, json.dumps(data).encode(), (), 0.0


def _error(status: int, message: str) -> tuple:
    return _json(status, {"error": {"code": status, "message": message}})


class BatchSim:
    """Batches of one `TeacherServer`; answers are computed by the server's own completion code when a batch ends."""

    def __init__(self, server: Any, options: BatchOptions | dict | None = None):
        self.server = server
        self.options = BatchOptions.from_any(options)
        self.batches: dict[str, dict] = {}
        self.created = 0

    def handle(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple:
        parts = path.split("/batches", 1)[1].strip("/").split("/")
        batch_id = parts[0] if parts and parts[0] else ""
        if not batch_id:
            if method == "POST":
                return self._create(body)
            if method == "GET":
                return self._list(query)
            return _error(405, "use POST or GET")
        batch = self.batches.get(batch_id)
        if batch is None:
            return _error(404, f"no batch {batch_id}")
        self._advance(batch)
        if len(parts) > 1 and parts[1] == "results" and method == "GET":
            if batch["status"] not in TERMINAL:
                return _error(409, f"batch {batch_id} is {batch['status']}; results come when it ends")
            start = int(query.get("cursor") or 0)
            limit = max(1, min(1000, int(query.get("limit") or 100)))
            page = batch["results"][start:start + limit]
            more = start + limit < len(batch["results"])
            return _json(200, {"object": "list", "data": page, "next_cursor": str(start + limit) if more else None})
        if method == "DELETE":
            if batch["status"] not in TERMINAL:
                return _error(409, f"batch {batch_id} is {batch['status']}; only a finished batch can be deleted")
            del self.batches[batch_id]
            return _json(200, {"id": batch_id, "object": "batch", "deletion": {"openrouter": "deleted"}})
        if method == "GET":
            return _json(200, self._public(batch, with_results=True))
        return _error(405, "use GET or DELETE")

    # -- endpoints ----------------------------------------------------------------------------------------------
    def _create(self, body: bytes) -> tuple:
        if len(body) > self.options.max_bytes:
            return _error(400, f"batch body is {len(body)} bytes; the limit is {self.options.max_bytes}")
        try:
            data = json.loads(body)
            model, endpoint, requests = data["model"], data["endpoint"], data["requests"]
            if not isinstance(requests, list) or not requests:
                raise TypeError("requests must be a non-empty array")
            ids = [str(r["custom_id"]) for r in requests]
            bodies = [r["body"] for r in requests]
        except (ValueError, KeyError, TypeError) as exc:
            return _error(400, f"bad batch body: {exc}")
        if endpoint != BATCH_ENDPOINT:
            return _error(400, f"endpoint {endpoint!r} is not simulated; use {BATCH_ENDPOINT}")
        if model not in self.server.teachers:
            return _error(400, f"unknown model {model!r}")
        if len(requests) > self.options.max_requests:
            return _error(400, f"{len(requests)} requests; a batch holds at most {self.options.max_requests}")
        if len(set(ids)) != len(ids):
            return _error(400, "custom_id values must be unique within a batch")
        now = time.time()
        self.created += 1
        batch = {
            "id": f"batch_{uuid.uuid4().hex[:24]}", "object": "batch", "endpoint": endpoint, "model": model,
            "completion_window": data.get("completion_window", "24h"), "metadata": data.get("metadata") or {},
            "status": "validating", "created_at": now, "in_progress_at": None, "completed_at": None,
            "expires_at": now + (self.options.expire_after_s or 86400.0), "error": None,
            "request_counts": {"total": len(requests), "completed": 0, "failed": 0},
            "requests": list(zip(ids, bodies, strict=True)), "results": [],
        }
        self.batches[batch["id"]] = batch
        return _json(202, self._public(batch, with_results=False))

    def _list(self, query: dict[str, str]) -> tuple:
        for batch in self.batches.values():
            self._advance(batch)
        ordered = sorted(self.batches.values(), key=lambda b: b["created_at"], reverse=True)
        if query.get("after"):
            ids = [b["id"] for b in ordered]
            ordered = ordered[ids.index(query["after"]) + 1:] if query["after"] in ids else []
        limit = max(1, min(100, int(query.get("limit") or 20)))
        page = [self._public(b, with_results=False) for b in ordered[:limit]]
        return _json(200, {"object": "list", "data": page, "first_id": page[0]["id"] if page else None,
                           "last_id": page[-1]["id"] if page else None, "has_more": len(ordered) > limit})

    # -- time passing -------------------------------------------------------------------------------------------
    def _advance(self, batch: dict) -> None:
        if batch["status"] in TERMINAL:
            return
        options = self.options
        elapsed = time.time() - batch["created_at"]
        if elapsed >= options.validate_s and batch["status"] == "validating":
            texts = " ".join(json.dumps(b.get("messages", "")) for _, b in batch["requests"])
            bad = [n for n in options.validation_error_prompts if n and n in texts]
            if bad:
                batch.update(status="failed", completed_at=time.time(),
                             error={"code": 400, "message": f"request validation failed: prompt contains {bad[0]!r}"})
                return
            batch.update(status="in_progress", in_progress_at=time.time())
        expire = options.expire_after_s
        if expire is not None and expire < options.complete_after_s and elapsed >= expire:
            share = max(0.0, expire - options.validate_s) / max(1e-9, options.complete_after_s - options.validate_s)
            self._finish(batch, "expired", math.ceil(len(batch["requests"]) * share))
        elif elapsed >= options.complete_after_s:
            self._finish(batch, "completed", len(batch["requests"]))

    def _finish(self, batch: dict, status: str, answered: int) -> None:
        server, options = self.server, self.options
        rng = server.rng
        for custom_id, body in batch["requests"][:answered]:
            if options.request_error_rate and rng.random() < options.request_error_rate:
                batch["results"].append({"custom_id": custom_id, "response": None,
                                         "error": {"code": 502, "message": "simulated provider error in batch"}})
                batch["request_counts"]["failed"] += 1
                continue
            index = _sample_index(custom_id, body)
            teacher = server.teachers.get(body.get("model") or batch["model"])
            request = {**body, "model": body.get("model") or batch["model"]}
            _, _, payload, keys, cost = server._complete(teacher, request, {"x-distill-sample-index": str(index)},
                                                         truncate=False)
            response = json.loads(payload)
            cost *= options.price_factor
            response["usage"]["cost"] = round(cost, 10)
            with server.counters.lock:
                for key in keys:
                    server.counters.billed[key] += 1
                server.counters.billed_cost += cost
                server.counters.faults["batch_answered"] += 1
            batch["results"].append({"custom_id": custom_id, "response": response, "error": None})
            batch["request_counts"]["completed"] += 1
        batch.update(status=status, completed_at=time.time())

    @staticmethod
    def _public(batch: dict, with_results: bool) -> dict:
        out = {k: v for k, v in batch.items() if k not in ("requests", "results")}
        out["results"] = batch["results"] if with_results and batch["status"] in TERMINAL else None
        return out


def _sample_index(custom_id: str, body: dict) -> int:
    head = custom_id.split("-", 1)[0]
    if head.startswith("s") and head[1:].isdigit():
        return int(head[1:])
    try:
        return int(body.get("seed") or 0)
    except (TypeError, ValueError):
        return 0
