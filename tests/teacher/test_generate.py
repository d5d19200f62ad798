"""The generate stage against the simulated teacher with faults on (in-process client; Ray actors in test_ray.py)."""

from __future__ import annotations

import io
import os
import shutil

import pyarrow.parquet as pq
import pytest

from distill_ray.builtin_problems import simulated_response
from distill_ray.teacher import FatalTeacherError, generate_traces, plan_generation
from distill_ray.teacher.client import messages_for
from distill_ray.teacher.server import content_key

STYLE = {"sim/concise": ("concise", 0.75), "sim/verbose": ("verbose", 0.5), "sim/deepseek": ("concise", 0.75)}


def _rows(out: str) -> list[dict]:
    return pq.read_table(os.path.join(out, "traces.parquet")).to_pylist()


def _expected(row: dict) -> tuple[str, str]:
    """What the simulated teacher answers to exactly this prompt and sample: proves the row is attached right."""
    style, rate = STYLE[row["model"]]
    key = f"{content_key(row['model'], messages_for(row['prompt']), 0.7, 1.0)}:{row['sample_index']}"
    return simulated_response(row["prompt"], style, rate, key)


def test_faults_every_row_ends_stored_or_failed_and_attached(server_factory, problems, teacher_config, tmp_path):
    server = server_factory(faults={"latency_s": 0.01, "error_rate": 0.12, "drop_rate": 0.06, "malformed_rate": 0.06,
                                    "hang_rate": 0.03, "hang_s": 30, "seed": 7})
    teacher = teacher_config(server.base_url, "sim/deepseek", samples_per_problem=2, request_timeout_s=0.4,
                             max_retries=8)
    stream = io.StringIO()
    summary = generate_traces(problems, "deep", teacher, str(tmp_path / "out"), cache_dir=str(tmp_path / "cache"),
                              progress_interval_s=0.01, progress_stream=stream)
    rows = _rows(str(tmp_path / "out"))
    assert len(rows) == 80 and len({(r["problem_id"], r["sample_index"]) for r in rows}) == 80
    for row in rows:
        if row["status"] == "ok":
            assert (row["reasoning"], row["content"]) == _expected(row)
            assert row["text"] == f"<think>{row['reasoning']}</think>\n\n{row['content']}"
            assert row["prompt_tokens"] > 0 and row["cost_usd"] > 0 and row["response_id"]
        else:
            assert row["error"]
    assert summary["ok"] == sum(r["status"] == "ok" for r in rows) >= 76
    kinds = summary["errors_by_kind"]
    assert kinds.get("5xx", 0) > 0 and kinds.get("connection", 0) > 0 and kinds.get("malformed", 0) > 0
    assert kinds.get("timeout", 0) > 0  # hangs were cut short by the request timeout
    assert server.duplicates() == {} and server.billed() == summary["paid"] == summary["ok"]
    assert max(r["attempts"] for r in rows) > 1
    assert "80/80 rows" in stream.getvalue() and "errors:" in stream.getvalue()


def test_rerun_growth_and_either_store_alone_pay_nothing_twice(server_factory, problems, teacher_config, tmp_path):
    server = server_factory(faults={"error_rate": 0.1, "seed": 1})
    teacher = teacher_config(server.base_url, "sim/verbose", samples_per_problem=2)
    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    first = generate_traces(problems[:25], "v", teacher, out, cache_dir=cache, progress_interval_s=0)
    assert first["paid"] == 50 and first["from_cache"] == 0
    again = generate_traces(problems[:25], "v", teacher, out, cache_dir=cache, progress_interval_s=0)
    assert again["requests"] == 0 and again["from_cache"] == 50
    grown = generate_traces(problems, "v", teacher, out, cache_dir=cache, progress_interval_s=0)
    assert grown["paid"] == 30 and grown["from_cache"] == 50 and grown["ok"] == 80
    shutil.rmtree(cache)  # the output alone is enough
    assert generate_traces(problems, "v", teacher, out, cache_dir=cache, progress_interval_s=0)["requests"] == 0
    server2 = server_factory()
    teacher2 = teacher_config(server2.base_url, "sim/verbose", samples_per_problem=2)
    out2 = str(tmp_path / "out2")
    generate_traces(problems[:5], "v", teacher2, out2, cache_dir=cache, progress_interval_s=0)
    shutil.rmtree(out2)  # the cache alone is enough
    assert generate_traces(problems[:5], "v", teacher2, out2, cache_dir=cache, progress_interval_s=0)["requests"] == 0
    assert server.duplicates() == {} and server2.duplicates() == {} and server.billed() == 80


def test_retry_after_is_honoured_and_the_limiter_avoids_429s(server_factory, problems, teacher_config, tmp_path):
    server = server_factory(faults={"rate_limit_rps": 40, "rate_limit_burst": 3, "latency_s": 0.02})
    storm = teacher_config(server.base_url, concurrency=16, max_retries=20)
    summary = generate_traces(problems[:30], "c", storm, str(tmp_path / "a"), cache_dir=str(tmp_path / "c"),
                              progress_interval_s=0)
    counters = server.counters()
    assert summary["ok"] == 30 and summary["errors_by_kind"]["429"] > 0
    assert counters["faults"].get("early_retry", 0) == 0  # no retry before its Retry-After
    paced = teacher_config(server.base_url, concurrency=16, max_rps=36)
    before = server.counters()["status"].get("429", 0)
    summary = generate_traces(problems[30:], "c", paced, str(tmp_path / "b"), cache_dir=str(tmp_path / "c"),
                              progress_interval_s=0)
    assert summary["ok"] == 10 and server.counters()["status"].get("429", 0) - before <= 1


def test_budget_cap_stops_new_requests_and_keeps_what_was_paid(server_factory, problems, teacher_config, tmp_path):
    server = server_factory(faults={"latency_s": 0.01})
    teacher = teacher_config(server.base_url, concurrency=2, max_cost_usd=0.0008)
    out, cache = str(tmp_path / "out"), str(tmp_path / "cache")
    summary = generate_traces(problems, "c", teacher, out, cache_dir=cache, progress_interval_s=0)
    rows = _rows(out)
    paid = [r for r in rows if r["status"] == "ok"]
    assert summary["stopped_by_budget"] and 0 < len(paid) < len(problems)
    largest = max(r["cost_usd"] for r in paid)
    assert 0.0008 <= summary["cost_usd"] <= 0.0008 + 2 * largest  # at most the requests already in flight
    assert all(r["error"].startswith("budget") for r in rows if r["status"] != "ok")
    assert server.billed() == summary["paid"] == len(paid)
    more = teacher.model_copy(update={"max_cost_usd": None})
    rest = generate_traces(problems, "c", more, out, cache_dir=cache, progress_interval_s=0)
    assert rest["ok"] == len(problems) and rest["paid"] == len(problems) - len(paid) and server.duplicates() == {}


def test_missing_key_fails_before_any_request(server_factory, problems, teacher_config, tmp_path, monkeypatch):
    server = server_factory()
    monkeypatch.delenv("DISTILL_TEST_KEY", raising=False)
    teacher = teacher_config(server.base_url, api_key_env="DISTILL_TEST_KEY")
    with pytest.raises(FatalTeacherError, match="DISTILL_TEST_KEY is not set"):
        generate_traces(problems, "c", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"))
    assert server.counters()["requests"] == 0


def test_refused_key_stops_before_spending_and_the_key_is_never_stored(server_factory, problems, teacher_config,
                                                                       tmp_path, monkeypatch):
    server = server_factory(api_key="sk-right-0123456789")
    monkeypatch.setenv("DISTILL_TEST_KEY", "sk-wrong-0123456789")
    teacher = teacher_config(server.base_url, api_key_env="DISTILL_TEST_KEY")
    with pytest.raises(FatalTeacherError, match="refused the API key"):
        generate_traces(problems, "c", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"))
    assert server.counters()["requests"] == 1 and server.billed() == 0  # only the free GET /models
    monkeypatch.setenv("DISTILL_TEST_KEY", "sk-right-0123456789")
    summary = generate_traces(problems[:5], "c", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                              progress_interval_s=0)
    assert summary["ok"] == 5
    for folder, _, files in os.walk(tmp_path):
        for name in files:
            with open(os.path.join(folder, name), "rb") as handle:
                assert b"0123456789" not in handle.read(), name


@pytest.mark.parametrize("policy,expect_ok,expect_truncated", [("drop", 0, 6), ("keep", 6, 6), ("retry", 6, 0)])
def test_truncation_policies(server_factory, problems, teacher_config, tmp_path, policy, expect_ok,
                             expect_truncated):
    server = server_factory()
    teacher = teacher_config(server.base_url, "sim/verbose", sampling={"max_tokens": 20}, truncation_policy=policy,
                             retry_max_tokens_cap=4096)
    summary = generate_traces(problems[:6], "v", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                              progress_interval_s=0)
    rows = _rows(str(tmp_path / "o"))
    assert summary["ok"] == expect_ok and sum(r["truncated"] for r in rows) == expect_truncated
    if policy == "drop":
        assert all(r["error"].startswith("truncated") and r["finish_reason"] == "length" for r in rows)
    if policy == "retry":
        assert all(r["finish_reason"] == "stop" and (r["reasoning"], r["content"]) == _expected(r) for r in rows)
        assert server.billed() == 12 and server.duplicates() == {}  # the retry is a different (larger) request
        again = generate_traces(problems[:6], "v", teacher, str(tmp_path / "o2"), cache_dir=str(tmp_path / "c"),
                                progress_interval_s=0)
        assert again["requests"] == 0 and again["ok"] == 6


def test_n_samples_in_one_request(server_factory, problems, teacher_config, tmp_path):
    server = server_factory()
    teacher = teacher_config(server.base_url, samples_per_problem=3, n_in_one_request=True)
    summary = generate_traces(problems[:8], "c", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                              progress_interval_s=0)
    rows = _rows(str(tmp_path / "o"))
    assert summary["requests"] == 8 and summary["ok"] == 24 and server.billed() == 24
    assert all((r["reasoning"], r["content"]) == _expected(r) for r in rows)
    assert sum(r["cost_usd"] for r in rows) == pytest.approx(server.counters()["billed_cost_usd"])


def test_dry_run_sends_nothing_and_plans(server_factory, problems, teacher_config, tmp_path):
    server = server_factory()
    teacher = teacher_config(server.base_url, samples_per_problem=4, sampling={"max_tokens": 1000},
                             price={"input_per_mtok": 3.0, "output_per_mtok": 15.0})
    summary = generate_traces(problems, "c", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                              dry_run=True)
    plan = summary["plan"]
    assert plan["rows"] == plan["requests"] == 160 and plan["est_completion_tokens"] == 160_000
    assert plan["est_cost_usd"] == pytest.approx((plan["est_prompt_tokens"] * 3 + 160_000 * 15) / 1e6)
    assert server.counters()["requests"] == 0 and not os.path.exists(tmp_path / "o")
    assert plan_generation(problems, teacher, skip=40)["requests"] == 120


def test_the_request_on_the_wire(server_factory, problems, teacher_config, tmp_path, monkeypatch):
    """What the provider receives: the sampling parameters, every `extra_body` field at the top level of the body
    (OpenRouter's `provider`/`reasoning`), the key as a bearer token, the sample index header; nothing else of ours."""
    import json as json_module

    from distill_ray.teacher.server import TeacherServer

    seen: list[tuple[str, dict, dict]] = []
    original = TeacherServer.handle

    async def recording(self, method, path, headers, body):
        if path.endswith("/chat/completions"):
            seen.append((path, dict(headers), json_module.loads(body)))
        return await original(self, method, path, headers, body)

    monkeypatch.setattr(TeacherServer, "handle", recording)
    monkeypatch.setenv("DISTILL_TEST_KEY", "sk-wire-0123456789")
    server = server_factory()
    extra = {"provider": {"order": ["deepinfra"], "allow_fallbacks": False}, "reasoning": {"effort": "high"}}
    teacher = teacher_config(server.base_url, api_key_env="DISTILL_TEST_KEY", samples_per_problem=2, extra_body=extra,
                             sampling={"max_tokens": 777, "temperature": 0.6, "top_p": 0.95})
    summary = generate_traces(problems[:3], "c", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                              progress_interval_s=0, use_ray=False)
    # no paid 1-token key check: the probe (the first work item, stored like every answer) authenticates the key
    assert summary["ok"] == 6 and len(seen) == 6 and server.billed() == 6
    prompts = {p["prompt"] for p in problems[:3]}
    indices = []
    for path, headers, body in seen:
        assert path == "/v1/chat/completions"
        assert headers["authorization"] == "Bearer sk-wire-0123456789"
        assert headers["content-type"].startswith("application/json")
        assert set(body) == {"model", "messages", "temperature", "top_p", "max_tokens", "provider", "reasoning"}
        assert (body["model"], body["temperature"], body["top_p"], body["max_tokens"]) == ("sim/concise", 0.6,
                                                                                          0.95, 777)
        assert body["provider"] == extra["provider"] and body["reasoning"] == extra["reasoning"]
        assert body["messages"][0]["role"] == "user" and body["messages"][0]["content"] in prompts
        indices.append(int(headers["x-distill-sample-index"]))
    assert sorted(indices) == [0, 0, 0, 1, 1, 1]


def test_the_key_check_bills_nothing_that_is_not_stored(server_factory, problems, teacher_config, tmp_path,
                                                        monkeypatch):
    from distill_ray.teacher.cache import ResponseCache

    server = server_factory(api_key="sk-right-0123456789")  # not OpenRouter: no GET /key, the probe checks the key
    monkeypatch.setenv("DISTILL_TEST_KEY", "sk-right-0123456789")
    teacher = teacher_config(server.base_url, api_key_env="DISTILL_TEST_KEY")
    for _ in range(2):  # a run and its resume: neither pays for a check of its own
        generate_traces(problems[:4], "c", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                        progress_interval_s=0, use_ray=False)
    stored = [ResponseCache(str(tmp_path / "c"), ns).load() for ns in os.listdir(tmp_path / "c")]
    assert server.billed() == 4 == sum(len(records) for records in stored) and server.duplicates() == {}
