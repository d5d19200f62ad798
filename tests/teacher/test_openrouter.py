"""The client against the simulator's `openrouter` profile: one documented OpenRouter behaviour per test."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from distill_ray.builtin_problems import make_problems
from distill_ray.config import TeacherConfig
from distill_ray.teacher import FatalTeacherError, generate_traces
from distill_ray.teacher.client import CreditsExhausted
from distill_ray.teacher.parts import read_traces

SONNET = "anthropic/claude-sim"
R1 = "deepseek/r1-sim"
OR_TEACHERS = {SONNET: {"style": "concise", "correct_rate": 0.8}, R1: {"style": "verbose", "correct_rate": 0.6}}
NO_TEMPERATURE = {"temperature": None, "top_p": None, "max_tokens": 2048}


@pytest.fixture
def problems():
    return make_problems("math", "train", 10, seed=3)


@pytest.fixture
def openrouter(server_factory):
    def start(profile=None, **kwargs):
        return server_factory(teachers=OR_TEACHERS, profile=profile or {}, **kwargs)

    return start


def teacher(base_url: str, model: str = SONNET, **overrides) -> TeacherConfig:
    values = {"provider": "openrouter", "base_url": base_url, "model": model, "concurrency": 8,
              "request_timeout_s": 5.0, "retry_base_delay_s": 0.02, "retry_max_delay_s": 0.2, "max_retries": 6,
              "sampling": NO_TEMPERATURE if model.startswith("anthropic/") else {"max_tokens": 2048}}
    values.update(overrides)
    return TeacherConfig(**values)


def run(problems, config, tmp_path, name="t", out="out", **kwargs):
    return generate_traces(problems, name, config, str(tmp_path / out), cache_dir=str(tmp_path / "cache"),
                           progress_interval_s=0, use_ray=False, **kwargs)


def rows(tmp_path, out="out"):
    return pq.read_table(os.path.join(tmp_path, out, "traces.parquet")).to_pylist()


def test_anthropic_reasons_only_when_asked(openrouter, problems, tmp_path):
    server = openrouter()
    plain = run(problems, teacher(server.base_url), tmp_path, out="plain")
    assert plain["ok"] == 10 and all(r["reasoning"] == "" for r in rows(tmp_path, "plain"))
    asked = run(problems, teacher(server.base_url, reasoning={"max_tokens": 2000}), tmp_path, out="asked")
    assert asked["ok"] == 10 and asked["paid"] == 10  # a different request: not served from the first run's cache
    for row in rows(tmp_path, "asked"):
        assert row["reasoning"] and row["text"].startswith(f"<think>{row['reasoning']}</think>")


def test_r1_reasons_by_default(openrouter, problems, tmp_path):
    server = openrouter()
    run(problems, teacher(server.base_url, R1), tmp_path)
    assert all(r["reasoning"] and r["content"] for r in rows(tmp_path))


def test_require_reasoning_fails_rows_without_it(openrouter, problems, tmp_path):
    server = openrouter()
    summary = run(problems, teacher(server.base_url, require_reasoning=True), tmp_path, probe=False)
    assert summary["ok"] == 0 and summary["failure_reasons"] == {"no_reasoning": 10}
    assert summary["permanent_failures"] == 10 and summary["complete"]
    assert all(r["text"] == "" for r in rows(tmp_path))
    again = run(problems, teacher(server.base_url, require_reasoning=True), tmp_path, probe=False)
    assert again["requests"] == 0 and again["failure_reasons"] == {"no_reasoning": 10}


def test_the_probe_stops_a_run_whose_reasoning_is_missing(openrouter, problems, tmp_path):
    server = openrouter()
    with pytest.raises(FatalTeacherError, match="reasoning"):
        run(problems, teacher(server.base_url, require_reasoning=True), tmp_path)
    assert server.billed() == 1  # the probe alone, not the whole set


def test_temperature_and_top_p_together_is_an_invalid_anthropic_request(openrouter, problems, tmp_path):
    server = openrouter()
    both = {"temperature": 0.7, "top_p": 1.0, "max_tokens": 2048}
    with pytest.raises(FatalTeacherError, match="top_p"):
        run(problems, teacher(server.base_url, sampling=both), tmp_path)
    summary = run(problems, teacher(server.base_url, sampling=both), tmp_path, out="noprobe", probe=False)
    assert summary["failure_reasons"] == {"invalid_request": 10} and summary["complete"]
    assert server.billed() == 0


def test_leaving_temperature_out_is_accepted_and_keeps_it_off_the_wire(openrouter, problems, tmp_path):
    server = openrouter()
    summary = run(problems, teacher(server.base_url, sampling={"temperature": 0.5, "top_p": None,
                                                               "max_tokens": 2048}), tmp_path)
    assert summary["ok"] == 10 and server.billed() == 10 and "400" not in server.counters()["status"]


@pytest.mark.parametrize("option, kind", [
    ("error_in_200_rate", "error_in_200"),        # top-level error, content null, finish_reason error, usage null
    ("choice_error_rate", "choice_error"),        # an error object on the choice only
    ("finish_error_rate", "finish_error"),        # finish_reason "error" only
    ("null_usage_rate", "no_usage"),              # usage null and no content
    ("retry_after_503_rate", "5xx"),              # 503 with Retry-After
    ("in_flight_402_rate", "402_in_flight"),      # 402 with Retry-After (in-flight budget)
], ids=["error-in-200", "choice-error", "finish-error", "usage-null", "503-retry-after", "402-retry-after"])
def test_transient_answers_are_retried_never_cached_never_paid_twice(openrouter, problems, tmp_path, option, kind):
    server = openrouter({option: 1.0, "first_attempt_only": True, "retry_after_s": 1.0})
    summary = run(problems, teacher(server.base_url, R1), tmp_path)
    assert summary["ok"] == 10 and summary["errors_by_kind"] == {kind: 10}
    assert server.duplicates() == {} and server.billed() == 10
    assert server.counters()["faults"].get("early_retry", 0) == 0  # Retry-After waited for where given
    assert all(r["attempts"] == 2 and r["content"] for r in rows(tmp_path))


def test_a_transient_answer_that_outlasts_the_retries_is_retried_by_a_rerun(openrouter, problems, tmp_path):
    server = openrouter({"error_in_200_rate": 1.0})
    first = run(problems, teacher(server.base_url, R1, max_retries=1), tmp_path, probe=False)
    assert first["failure_reasons"] == {"error_in_200": 10} and not first["complete"]
    assert first["transient_failures"] == 10
    server2 = openrouter()
    second = run(problems, teacher(server2.base_url, R1), tmp_path, probe=False)
    assert second["ok"] == 10 and second["complete"] and server2.billed() == 10


def test_content_filter_and_empty_content_are_permanent_failures(openrouter, problems, tmp_path):
    server = openrouter({"content_filter_prompts": [problems[0]["prompt"]],
                         "empty_content_prompts": [problems[1]["prompt"]]})
    summary = run(problems, teacher(server.base_url, R1), tmp_path)
    assert summary["failure_reasons"] == {"content_filter": 1, "empty_content": 1} and summary["ok"] == 8
    by_id = {r["problem_id"]: r for r in rows(tmp_path)}
    assert by_id[problems[0]["id"]]["failure"] == "content_filter" and by_id[problems[0]["id"]]["text"] == ""
    assert by_id[problems[1]["id"]]["permanent"] and by_id[problems[1]["id"]]["status"] == "failed"
    again = run(problems, teacher(server.base_url, R1), tmp_path)
    assert again["requests"] == 0 and again["failure_reasons"] == summary["failure_reasons"]
    assert summary["empty_retried"] == 2 and server.billed() == 10 + 2  # permanent only after the two retries


def test_an_empty_answer_is_retried_and_the_next_answer_kept(openrouter, problems, tmp_path):
    server = openrouter({"empty_content_prompts": [problems[1]["prompt"]], "empty_content_times": 1})
    summary = run(problems, teacher(server.base_url, R1, empty_retries=2), tmp_path)
    assert summary["ok"] == 10 and summary["complete"] and summary["empty_retried"] == 1
    assert server.billed() == 11  # the empty answer was billed; its cost is in the ledger and the cache
    assert summary["cost_usd"] == pytest.approx(server.counters()["billed_cost_usd"])
    row = next(r for r in rows(tmp_path) if r["problem_id"] == problems[1]["id"])
    assert row["content"] and row["attempts"] == 2


def test_403_moderation_fails_that_row_and_the_run_goes_on(openrouter, problems, tmp_path):
    flagged = problems[3]
    server = openrouter({"moderation_prompts": [flagged["prompt"]]})
    summary = run(problems, teacher(server.base_url, R1), tmp_path)
    assert summary["ok"] == 9 and summary["failure_reasons"] == {"moderation": 1} and summary["complete"]
    row = next(r for r in rows(tmp_path) if r["problem_id"] == flagged["id"])
    assert row["failure"] == "moderation" and "violence" in row["error"] and row["permanent"]
    assert run(problems, teacher(server.base_url, R1), tmp_path)["requests"] == 0  # the verdict is kept


def test_401_stops_before_anything_is_sent(openrouter, problems, tmp_path, monkeypatch):
    server = openrouter(api_key="sk-right")
    monkeypatch.setenv("SIM_OR_KEY", "sk-wrong")
    with pytest.raises(FatalTeacherError, match="SIM_OR_KEY"):
        run(problems, teacher(server.base_url, R1, api_key_env="SIM_OR_KEY"), tmp_path)
    assert server.counters()["status"] == {"401": 1}  # GET /key refused it; no completion was asked for


def test_api_key_file_is_read_and_a_missing_one_names_the_path(openrouter, problems, tmp_path):
    server = openrouter(api_key="sk-from-file")
    key_file = tmp_path / "secret"
    key_file.write_text("sk-from-file\n")
    assert run(problems, teacher(server.base_url, R1, api_key_file=str(key_file)), tmp_path)["ok"] == 10
    with pytest.raises(FatalTeacherError, match="nope"):
        generate_traces(problems, "t", teacher(server.base_url, R1, api_key_file=str(tmp_path / "nope")),
                        str(tmp_path / "o2"), cache_dir=str(tmp_path / "c2"), progress_interval_s=0, use_ray=False)


def test_402_stops_the_run_and_a_top_up_pays_only_for_the_rest(openrouter, problems, tmp_path):
    server = openrouter()
    one = generate_traces(problems[:1], "t", teacher(server.base_url, R1), str(tmp_path / "one"),
                          cache_dir=str(tmp_path / "c1"), progress_interval_s=0, use_ray=False)["cost_usd"]
    server.reset()
    server.set_spend_limit(one * 4.5)  # about four answers' worth
    with pytest.raises(CreditsExhausted, match="credits"):
        run(problems, teacher(server.base_url, R1, concurrency=1), tmp_path)
    stored = [r for r in rows(tmp_path) if r["status"] == "ok"]
    assert 3 <= len(stored) == server.billed() <= 6
    assert all(r["failure"] == "credits" for r in rows(tmp_path) if r["status"] != "ok")
    server.set_spend_limit(None)  # topped up
    summary = run(problems, teacher(server.base_url, R1), tmp_path)
    assert summary["ok"] == 10 and summary["paid"] == 10 - len(stored) and server.duplicates() == {}


def test_key_usage_is_reconciled_with_the_ledger(openrouter, problems, tmp_path):
    server = openrouter()
    summary = run(problems, teacher(server.base_url, R1), tmp_path)
    assert summary["key_usage_start_usd"] == 0
    assert summary["key_usage_end_usd"] == pytest.approx(summary["cost_usd"]) == pytest.approx(
        server.counters()["billed_cost_usd"])
    assert summary["ledger_total_usd"] == pytest.approx(summary["cost_usd"])


def test_the_budget_holds_across_domains_and_resumes(openrouter, tmp_path):
    server = openrouter()
    math, code = make_problems("math", "train", 12, seed=5), make_problems("code", "train", 12, seed=5)
    probe = run(math[:1], teacher(server.base_url, R1), tmp_path, out="probe")["cost_usd"]
    cap = probe * 14  # a little over one domain's worth
    first = run(math, teacher(server.base_url, R1, max_cost_usd=cap, concurrency=1), tmp_path, out="math")
    assert first["ok"] == 12 and first["spent_before_usd"] == pytest.approx(probe)
    second = run(code, teacher(server.base_url, R1, max_cost_usd=cap, concurrency=1), tmp_path, out="code")
    assert second["stopped_by_budget"] and second["ok"] < 12 and second["failure_reasons"].get("budget")
    assert second["spent_before_usd"] == pytest.approx(first["ledger_total_usd"])
    again = run(code, teacher(server.base_url, R1, max_cost_usd=cap, concurrency=1), tmp_path, out="code")
    assert again["paid"] == 0 and again["stopped_by_budget"]  # a resume does not start the budget again
    largest = max(r["cost_usd"] for r in rows(tmp_path, "code") + rows(tmp_path, "math"))
    assert server.counters()["billed_cost_usd"] <= cap + largest  # at most the one request that crossed it


def test_the_dry_run_compares_its_estimate_with_limit_remaining(openrouter, problems, tmp_path):
    server = openrouter({"spend_limit_usd": 0.001})
    summary = run(problems, teacher(server.base_url, R1, price={"input_per_mtok": 1.0, "output_per_mtok": 4.0}),
                  tmp_path, dry_run=True)
    plan = summary["plan"]
    assert plan["key_limit_remaining_usd"] == 0.001 and plan["estimate_fits_key_limit"] is False
    assert server.billed() == 0


def test_encrypted_reasoning_is_counted_and_kept_out_of_the_text(openrouter, problems, tmp_path):
    server = openrouter({"encrypted_reasoning": True})
    summary = run(problems, teacher(server.base_url, reasoning={"effort": "high"}), tmp_path)
    assert summary["reasoning_encrypted_items"] == 10
    for row in rows(tmp_path):
        assert row["reasoning_encrypted"] == 1 and "c2ltdWxhdGVk" not in row["text"] and row["reasoning"]


def test_reasoning_and_provider_routing_reach_the_wire(openrouter, problems, tmp_path, monkeypatch):
    from distill_ray.teacher.server import TeacherServer

    seen: list[dict] = []
    original = TeacherServer.handle

    async def recording(self, method, path, headers, body):
        if path.endswith("/chat/completions"):
            seen.append(json.loads(body))
        return await original(self, method, path, headers, body)

    monkeypatch.setattr(TeacherServer, "handle", recording)
    server = openrouter()
    routing = {"require_parameters": True, "quantizations": ["bf16"], "data_collection": "deny"}
    run(problems[:2], teacher(server.base_url, reasoning={"max_tokens": 1500, "exclude": False},
                              provider_routing=routing), tmp_path)
    assert len(seen) == 2
    for body in seen:
        assert body["reasoning"] == {"max_tokens": 1500} and body["provider"] == routing
        assert "temperature" not in body and "top_p" not in body


def test_the_seed_teachers_get_reasoning_traces(server_factory, problems, tmp_path, monkeypatch):
    """sweeps/seed.yaml's own teacher settings, only the endpoint swapped for the simulator."""
    from distill_ray.config import load_sweep

    seed = load_sweep(os.path.join(os.path.dirname(__file__), "..", "..", "sweeps", "seed.yaml"), [])
    sonnet, r1 = seed.teachers["sonnet"], seed.teachers["r1"]
    server = server_factory(teachers={sonnet.model: {"style": "concise", "correct_rate": 0.8},
                                      r1.model: {"style": "verbose", "correct_rate": 0.6}}, profile={},
                            api_key="sk-or-seed")
    monkeypatch.setenv(sonnet.api_key_env, "sk-or-seed")
    for name, config in (("sonnet", sonnet), ("r1", r1)):
        fast_polls = config.batch.model_copy(update={"poll_initial_s": 0.05, "poll_max_s": 0.2})  # Sonnet: batch
        local = config.model_copy(update={"base_url": server.base_url, "concurrency": 8, "actors": 1,
                                          "max_rps": None, "batch": fast_polls})
        summary = run(problems, local, tmp_path, name=name, out=name)
        assert summary["ok"] == 10 and summary["complete"] and summary["probe"]["reasoning_present"], summary
        # Sonnet runs in batch mode: its rows are part files, read like every other layout
        assert all(r["reasoning"] and r["content"] for r in read_traces(os.path.join(tmp_path, name)))


def test_a_402_waits_for_the_requests_already_admitted_and_stores_every_billed_answer(openrouter, tmp_path):
    many = make_problems("math", "train", 24, seed=4)
    server = openrouter(faults={"latency_s": 0.3})
    one = generate_traces(many[:1], "t", teacher(server.base_url, R1), str(tmp_path / "one"),
                          cache_dir=str(tmp_path / "c1"), progress_interval_s=0, use_ray=False)["cost_usd"]
    server.reset()
    server.set_spend_limit(one * 2.5)  # eight requests are admitted together; the next arrivals get the 402
    with pytest.raises(CreditsExhausted):
        run(many, teacher(server.base_url, R1, concurrency=8), tmp_path, probe=False)
    stored = [r for r in rows(tmp_path) if r["status"] == "ok"]
    assert len(stored) == server.billed() >= 3  # paid after the 402 arrived, and stored all the same


def test_a_key_refused_mid_run_waits_for_the_admitted_requests_then_raises(openrouter, tmp_path):
    many = make_problems("math", "train", 24, seed=4)
    server = openrouter({"key_disabled_after": 10}, faults={"latency_s": 0.3})
    with pytest.raises(FatalTeacherError, match="refused"):
        run(many, teacher(server.base_url, R1, concurrency=8), tmp_path, probe=False)
    stored = [r for r in rows(tmp_path) if r["status"] == "ok"]
    assert len(stored) == server.billed() == 10 and server.counters()["status"].get("403", 0) >= 1
    assert all(r["failure"] == "fatal" for r in rows(tmp_path) if r["status"] != "ok")
