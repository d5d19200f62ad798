"""Providers' batch endpoints behind one protocol: `BatchProvider`, and OpenRouter's (`OpenRouterBatches`).

    provider = OpenRouterBatches("https://openrouter.ai/api/v1", api_key)
    state = provider.submit(model, [{"custom_id": ..., "body": {...}}], tag)   # 202: status "validating"
    provider.status(state.id); provider.find(tag); list(provider.results(state.id))

OpenRouter's Batch API (openrouter.ai/docs/guides/features/batch-api, openrouter.ai/docs/batch-quickstart): inline
requests (no file upload), at most 5,000 requests and 200 MB per batch, one model per batch, `metadata` kept with the
batch and returned by the list endpoint (how a lost id is found again by its tag), results by cursor pages, each with
a `response` or an `error`. Anthropic's Message Batches (`custom_id` + `params`, `processing_status`, results as a
JSONL stream) and OpenAI's Batch API (an uploaded JSONL file, `output_file_id`) fit behind the same four calls; neither
is implemented. The runner (`batch.py`) uses only the protocol.

Not guaranteed: `find` pages through every batch of the key (newest first), which is slow on an account with very many
batches; HTTP calls use the standard library's client, one at a time (a driver makes a few per poll).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from distill_ray.teacher.client import FatalTeacherError
from distill_ray.teacher.spec import TeacherSpec

TAG_FIELD = "distill_ray_tag"


@dataclass
class BatchState:
    """A provider's batch in the terms the runner needs."""

    id: str
    status: str  # validating | in_progress | completed | failed | expired | cancelled
    total: int = 0
    completed: int = 0
    failed: int = 0
    error: str = ""


class BatchError(RuntimeError):
    """A batch call that failed; `status` is the HTTP status (0: no answer), `transient` whether to try again."""

    def __init__(self, message: str, status: int = 0):
        super().__init__(message)
        self.status = status
        self.transient = status == 0 or status == 429 or status >= 500


class BatchProvider(Protocol):
    """A provider's batch endpoint."""

    max_requests: int
    max_bytes: int

    def submit(self, model: str, requests: list[dict], tag: str) -> BatchState: ...

    def status(self, batch_id: str) -> BatchState: ...

    def find(self, tag: str) -> str | None: ...

    def results(self, batch_id: str) -> Iterator[tuple[str, dict | None, dict | None]]: ...


class OpenRouterBatches:
    """OpenRouter's Batch API (openrouter.ai/docs/batch-quickstart): inline requests, results by cursor pages."""

    max_requests = 5000  # the guide: up to 5,000 requests and 200 MB per batch
    max_bytes = 200_000_000

    def __init__(self, base_url: str, api_key: str, timeout_s: float = 120.0):
        self.base = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, body: dict | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.base}{path}", data=data, method=method, headers={
            "Authorization": f"Bearer {self._api_key}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                return json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as exc:
            text = exc.read()[:300].decode("utf-8", "replace")
            if exc.code in (401, 403):
                raise FatalTeacherError(f"batch {method} {path}: HTTP {exc.code}: {text}") from None
            raise BatchError(f"batch {method} {path}: HTTP {exc.code}: {text}", exc.code) from None
        except (OSError, ValueError) as exc:  # connection refused, reset, timeout, a body that is not JSON
            raise BatchError(f"batch {method} {path}: {exc}") from None

    @staticmethod
    def _state(data: dict) -> BatchState:
        counts = data.get("request_counts") or {}
        error = data.get("error") or {}
        return BatchState(str(data["id"]), str(data.get("status", "")), int(counts.get("total") or 0),
                          int(counts.get("completed") or 0), int(counts.get("failed") or 0),
                          str(error.get("message") or "") if isinstance(error, dict) else str(error))

    def submit(self, model: str, requests: list[dict], tag: str) -> BatchState:
        # endpoint and model before requests: the API reads the body as a stream (noted by clients verified live)
        body = {"endpoint": "/v1/chat/completions", "model": model, "completion_window": "24h",
                "metadata": {TAG_FIELD: tag}, "requests": requests}
        return self._state(self._call("POST", "/batches", body))

    def status(self, batch_id: str) -> BatchState:
        return self._state(self._call("GET", f"/batches/{urllib.parse.quote(batch_id)}"))

    def find(self, tag: str) -> str | None:
        after = ""
        while True:
            page = self._call("GET", "/batches?limit=100" + (f"&after={urllib.parse.quote(after)}" if after else ""))
            for item in page.get("data") or []:
                if (item.get("metadata") or {}).get(TAG_FIELD) == tag:
                    return str(item["id"])
            if not page.get("has_more") or not page.get("last_id"):
                return None
            after = str(page["last_id"])

    def results(self, batch_id: str) -> Iterator[tuple[str, dict | None, dict | None]]:
        cursor = ""
        while True:
            query = "?limit=1000" + (f"&cursor={urllib.parse.quote(cursor)}" if cursor else "")
            page = self._call("GET", f"/batches/{urllib.parse.quote(batch_id)}/results{query}")
            for line in page.get("data") or []:
                yield str(line.get("custom_id")), line.get("response"), line.get("error")
            cursor = page.get("next_cursor") or ""
            if not cursor:
                return


def make_provider(teacher: TeacherSpec, api_key: str) -> BatchProvider:
    """The batch endpoint of a teacher's provider (openrouter, or builtin: the simulator of OpenRouter's)."""
    if teacher.provider not in ("openrouter", "builtin"):
        raise ValueError(f"teacher {teacher.name!r}: no batch endpoint is implemented for provider "
                         f"{teacher.provider!r} (openrouter only)")
    return OpenRouterBatches(teacher.base_url, api_key)
