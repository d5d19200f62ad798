"""The `openrouter` behaviour profile of the simulated teacher: OpenRouter's documented ways of answering.

    start_teacher_server(teachers=..., profile={"error_in_200_rate": 0.1, "moderation_prompts": ["marbles"]})

What it reproduces, each behind its own option (all off by default except the reasoning and sampling rules):

- reasoning opt-in for `anthropic/*` models: reasoning comes back only when the request carries a `reasoning` object
  with `enabled`, `max_tokens` or `effort` (openrouter.ai/docs/use-cases/reasoning-tokens; other models reason by
  default, like R1); `exclude: true` bills the reasoning but leaves it out. Reasoning is returned as `message.reasoning`
  and as `reasoning_details` items of type `reasoning.text` (plus a `reasoning.encrypted` item when asked);
- `anthropic/*` with both `temperature` and `top_p`: 400 (the request is invalid);
- errors after the model started, as HTTP 200 (openrouter.ai/docs/api/reference/errors-and-debugging): a top-level
  `error` with `content: null`, `finish_reason: "error"` and `usage: null` (`error_in_200_rate`); a choice-level
  `error` only (`choice_error_rate`); `finish_reason: "error"` only (`finish_error_rate`); `usage: null` and no content
  (`null_usage_rate`). None of them is billed;
- billed answers that are not traces: `finish_reason: "content_filter"` for prompts containing one of
  `content_filter_prompts`, and empty content with `finish_reason: "stop"` for those containing one of
  `empty_content_prompts` (on every answer, or with `empty_content_times: N` only on the first N answers of each
  (prompt, sample), as a provider's occasional empty completion that the next try answers);
- 402 "insufficient credits" without Retry-After once `spend_limit_usd` has been billed (raise it with
  `POST /admin/credits {"spend_limit_usd": X}`, as a top-up would); 402 with Retry-After and `error.metadata.
  limit_source: "openrouter_in_flight_budget"` (`in_flight_402_rate`);
- 403 with `error.metadata.reasons` and `flagged_input` for prompts containing one of `moderation_prompts`;
- 403 without metadata (a key disabled mid-run) for every completion after the first `key_disabled_after` arrivals;
- 503 with Retry-After (`retry_after_503_rate`, `retry_after_s`);
- `GET /v1/key`: `{"data": {"usage", "limit", "limit_remaining", ...}}` in dollars, usage = what was billed.

`first_attempt_only: true` draws the transient faults only on a request's first arrival, so a test sees each fault
once per request and then the answer (deterministic). Not reproduced: streaming, provider fallbacks, per-provider
prices, partial billing of failed generations, moderation of outputs.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class OpenRouterProfile:
    error_in_200_rate: float = 0.0
    choice_error_rate: float = 0.0
    finish_error_rate: float = 0.0
    null_usage_rate: float = 0.0
    retry_after_503_rate: float = 0.0
    in_flight_402_rate: float = 0.0
    retry_after_s: float = 1.0
    spend_limit_usd: float | None = None
    moderation_prompts: list[str] = field(default_factory=list)
    content_filter_prompts: list[str] = field(default_factory=list)
    empty_content_prompts: list[str] = field(default_factory=list)
    empty_content_times: int = 0  # 0: always empty; N: empty on the first N answers of a (prompt, sample)
    encrypted_reasoning: bool = False
    first_attempt_only: bool = False
    key_disabled_after: int | None = None
    seed: int = 0
    batches: dict = field(default_factory=dict)  # options of the batch endpoints (batch_sim.BatchOptions)

    @classmethod
    def from_any(cls, value: OpenRouterProfile | dict | None) -> OpenRouterProfile | None:
        if value is None or isinstance(value, OpenRouterProfile):
            return value
        known = {f.name for f in fields(cls)}
        unknown = set(value) - known
        if unknown:
            raise ValueError(f"unknown openrouter profile option(s): {', '.join(sorted(unknown))}; "
                             f"known: {', '.join(sorted(known))}")
        return cls(**value)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.seen: set[str] = set()
        self.empty_answers: dict[str, int] = {}
        self.arrivals = 0

    # -- requests that never reach a model ----------------------------------------------------------------------
    def before(self, request: dict, user_text: str, arrival_key: str, billed_cost: float) -> tuple | None:
        """An answer that stops the request before a model runs (status, headers, body), or None."""
        model = str(request.get("model", ""))
        if model.startswith("anthropic/") and request.get("temperature") is not None \
                and request.get("top_p") is not None:
            return _error(400, f"{model}: temperature and top_p cannot both be specified for this model")
        self.arrivals += 1
        if self.key_disabled_after is not None and self.arrivals > self.key_disabled_after:
            return _error(403, "This API key is disabled")
        if self.spend_limit_usd is not None and billed_cost >= self.spend_limit_usd:
            return _error(402, "Insufficient credits. Add more using https://openrouter.ai/settings/credits")
        for needle in self.moderation_prompts:
            if needle and needle in user_text:
                return _error(403, f"{model} requires moderation on OpenRouter. Your input was flagged for "
                                   "\"violence\".", {"reasons": ["violence"], "flagged_input": user_text[:100],
                                                     "provider_name": "simulated", "model_slug": model})
        first = arrival_key not in self.seen
        self.seen.add(arrival_key)
        if self.first_attempt_only and not first:
            return None
        retry = {"Retry-After": str(max(1, round(self.retry_after_s)))}
        if self._draw(self.retry_after_503_rate):
            status, _, body = _error(503, "No available model provider meets your routing requirements")
            return status, retry, body
        if self._draw(self.in_flight_402_rate):
            status, _, body = _error(402, "Request exceeds the in-flight spending budget; retry shortly",
                                     {"limit_source": "openrouter_in_flight_budget"})
            return status, retry, body
        if self._draw(self.error_in_200_rate):
            return 200, {}, _body_200(model, error=True, finish="error", usage=None)
        if self._draw(self.choice_error_rate):
            return 200, {}, _body_200(model, choice_error=True, finish="error", usage={"prompt_tokens": 10,
                                                                                          "completion_tokens": 0})
        if self._draw(self.finish_error_rate):
            return 200, {}, _body_200(model, finish="error", usage={"prompt_tokens": 10, "completion_tokens": 0})
        if self._draw(self.null_usage_rate):
            return 200, {}, _body_200(model, finish="stop", usage=None)
        return None

    def _draw(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    # -- how a model answers ------------------------------------------------------------------------------------
    @staticmethod
    def returns_reasoning(request: dict) -> tuple[bool, bool]:
        """(reasons at all, reasoning returned): anthropic models reason only when asked; exclude hides it."""
        reasoning = request.get("reasoning") if isinstance(request.get("reasoning"), dict) else {}
        asked = bool(reasoning.get("enabled") or reasoning.get("max_tokens") or
                     reasoning.get("effort") not in (None, "none"))
        reasons = asked or not str(request.get("model", "")).startswith("anthropic/")
        if reasoning.get("enabled") is False or reasoning.get("effort") == "none":
            reasons = False
        return reasons, reasons and not reasoning.get("exclude")

    def outcome(self, user_text: str, answer_key: str = "") -> str:
        """"" (a normal answer), "content_filter" or "empty": billed answers that are not traces."""
        if any(needle and needle in user_text for needle in self.content_filter_prompts):
            return "content_filter"
        if any(needle and needle in user_text for needle in self.empty_content_prompts):
            if not self.empty_content_times:
                return "empty"
            given = self.empty_answers.get(answer_key, 0)
            if given < self.empty_content_times:
                self.empty_answers[answer_key] = given + 1
                return "empty"
        return ""

    def message(self, reasoning: str, content: str, returned: bool) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": content}
        if returned and reasoning:
            message["reasoning"] = reasoning
            details: list[dict] = [{"type": "reasoning.text", "text": reasoning, "signature": "sim-signature",
                                    "format": "anthropic-claude-v1", "index": 0}]
            if self.encrypted_reasoning:
                details.append({"type": "reasoning.encrypted", "data": "c2ltdWxhdGVkLXJlZGFjdGVk", "index": 1})
            message["reasoning_details"] = details
        else:
            message["reasoning"] = None
        return message

    def key_response(self, billed_cost: float) -> bytes:
        limit = self.spend_limit_usd
        data = {"label": "sk-or-v1-sim...0000", "usage": round(billed_cost, 10), "limit": limit,
                "limit_remaining": None if limit is None else round(max(0.0, limit - billed_cost), 10),
                "is_free_tier": False, "is_provisioning_key": False, "limit_reset": None}
        return json.dumps({"data": data}).encode()


def _error(status: int, message: str, metadata: dict | None = None) -> tuple[int, dict, bytes]:
    error: dict[str, Any] = {"code": status, "message": message}
    if metadata:
        error["metadata"] = metadata
    return status, {}, json.dumps({"error": error}).encode()


def _body_200(model: str, *, error: bool = False, choice_error: bool = False, finish: str = "error",
              usage: dict | None = None) -> bytes:
    choice: dict[str, Any] = {"index": 0, "message": {"role": "assistant", "content": None}, "finish_reason": finish}
    if choice_error:
        choice["error"] = {"code": 502, "message": "upstream provider error during generation"}
    body: dict[str, Any] = {"id": "gen-simulated-error", "object": "chat.completion", "model": model,
                            "choices": [choice], "usage": usage}
    if error:
        body["error"] = {"code": 502, "message": "Provider returned error", "metadata": {"provider_name": "simulated"}}
    return json.dumps(body).encode()
