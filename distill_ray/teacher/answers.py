"""What a provider's answer means: reasoning and content out of any format, trace or not, and the Trace row.

    reasoning, content, encrypted = parse_message(choice["message"])
    classify_choice(choice, teacher)     # None (a trace), or (reason, permanent)
    build_row(teacher, problem, index, record_or_reason)

Reasoning comes from OpenRouter's `message.reasoning` / `reasoning_details` (text and summary items; encrypted items are
counted, never put in the text), DeepSeek's `reasoning_content`, or an inline `<think>…</think>` (also an unclosed
one, and R1's missing opening tag). Permanent failure reasons are `PERMANENT_REASONS`; every other reason a row can
carry is transient and retried by a re-run. Pure functions: nothing here sends or stores anything.
"""

from __future__ import annotations

import hashlib
import json
import re
import time

from distill_ray.teacher.spec import TeacherSpec

# failure reasons that a re-run does not retry (the rest are transient); "truncated" is the truncation policy's
PERMANENT_REASONS = ("content_filter", "empty_content", "invalid_request", "moderation", "no_reasoning", "truncated")


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode()).hexdigest()[:16]


_THINK_OPEN = re.compile(r"^\s*<think>", re.S)


def normalise_message(message: dict) -> tuple[str, str]:
    """(reasoning, content) from any of the providers' reasoning formats."""
    reasoning, content, _ = parse_message(message)
    return reasoning, content


def parse_message(message: dict) -> tuple[str, str, int]:
    """(reasoning, content, encrypted reasoning items): reasoning text never includes encrypted items."""
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    details = message.get("reasoning_details") if isinstance(message.get("reasoning_details"), list) else []
    encrypted = sum(1 for d in details if isinstance(d, dict) and d.get("type") == "reasoning.encrypted")
    reasoning = message.get("reasoning_content") or message.get("reasoning") or ""
    if not reasoning and details:
        parts = []
        for d in details:
            if not isinstance(d, dict) or d.get("type") == "reasoning.encrypted":
                continue
            parts.append(str(d.get("text") or d.get("summary") or ""))
        reasoning = "".join(parts)
    inline = ""
    opened = _THINK_OPEN.match(content)
    if opened:
        close = content.find("</think>", opened.end())
        if close < 0:  # cut off inside the reasoning
            inline, content = content[opened.end():], ""
        else:
            inline, content = content[opened.end():close], content[close + len("</think>"):]
    elif "</think>" in content and "<think>" not in content:  # some R1 deployments drop the opening tag
        inline, _, content = content.partition("</think>")
    inline, content = inline.strip(), content.strip()
    if inline and not reasoning:
        reasoning = inline
    elif inline:
        reasoning = f"{reasoning}\n\n{inline}"
    return str(reasoning).strip(), content, encrypted


def classify_choice(choice: dict, teacher: TeacherSpec) -> tuple[str, bool] | None:
    """(reason, permanent) when a choice of a 200 answer is not a trace; None when it is one."""
    if choice.get("error"):
        return "choice_error", False
    finish = choice.get("finish_reason")
    if finish == "error":
        return "finish_error", False
    if finish == "content_filter":
        return "content_filter", True
    if finish == "length":
        return None  # the truncation policy decides
    reasoning, content, _ = parse_message(choice["message"])
    if not content:
        return "empty_content", True
    if teacher.require_reasoning and not reasoning:
        return "no_reasoning", True
    return None


def training_text(reasoning: str, content: str) -> str:
    return f"<think>{reasoning}</think>\n\n{content}"


def failure_record(model: str, index: int, max_tokens: int, reason: str, message: str, detail: dict | None,
                   attempts: int) -> dict:
    """A cache record of a permanent verdict: no text, the reason and what the provider said."""
    return {"model": model, "sample_index": index, "max_tokens": max_tokens, "content": "", "reasoning": "",
            "finish_reason": "", "reasoning_encrypted": 0, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0,
            "cost_source": "none", "response_id": "", "latency_s": 0.0, "attempts": attempts, "created": time.time(),
            "failure": reason, "failure_detail": message[:300], "failure_metadata": detail or {}}


def failure_reason(error: str) -> str:
    """The reason of a failed row's `error` ("kind: message")."""
    return error.partition(":")[0].strip() if error else ""


def build_row(teacher: TeacherSpec, problem: dict, index: int, record: dict | str, from_cache: bool = False) -> dict:
    """A Trace row from a cache record (or a failure reason), applying the truncation policy."""
    row = {
        "problem_id": problem["id"], "domain": problem.get("domain", ""), "teacher": teacher.name,
        "model": teacher.model, "sample_index": index, "prompt": problem["prompt"],
        "prompt_hash": prompt_hash(problem["prompt"]), "content": "", "reasoning": "", "text": "", "finish_reason": "",
        "truncated": False, "prompt_tokens": 0, "completion_tokens": 0, "cost_usd": 0.0, "latency_s": 0.0,
        "attempts": 0, "response_id": "", "status": "failed", "error": "", "failure": "", "permanent": False,
        "reasoning_encrypted": 0, "cost_source": "", "from_cache": from_cache,
    }
    if isinstance(record, str):
        row["error"] = record
        row["failure"] = failure_reason(record)
        return row
    truncated = record["finish_reason"] == "length"
    common = dict(finish_reason=record["finish_reason"], prompt_tokens=int(record["prompt_tokens"]),
                  completion_tokens=int(record["completion_tokens"]), cost_usd=float(record["cost_usd"]),
                  latency_s=float(record["latency_s"]), attempts=int(record["attempts"]),
                  response_id=record["response_id"], reasoning_encrypted=int(record.get("reasoning_encrypted") or 0),
                  cost_source=str(record.get("cost_source") or ""))
    if record.get("failure"):  # a permanent verdict: its reason, and no text that could reach training
        row.update(common, error=f"{record['failure']}: {record.get('failure_detail', '')}",
                   failure=record["failure"], permanent=True)
        if record.get("failure_metadata"):
            row["error"] += f" {json.dumps(record['failure_metadata'], ensure_ascii=False)[:300]}"
        return row
    if teacher.require_reasoning and not record["reasoning"] and not truncated:
        # an answer cached before require_reasoning was set
        row.update(common, error="no_reasoning: the answer carries no reasoning", failure="no_reasoning",
                   permanent=True)
        return row
    row.update(
        common, content=record["content"], reasoning=record["reasoning"],
        text=training_text(record["reasoning"], record["content"]), truncated=truncated, status="ok",
    )
    if truncated and teacher.truncation_policy != "keep":
        row["status"] = "failed"
        row["failure"], row["permanent"] = "truncated", True
        row["error"] = "truncated: finish_reason length" + (
            " after one retry with a larger max_tokens" if teacher.truncation_policy == "retry" else "")
    return row
