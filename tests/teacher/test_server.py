"""The simulated teacher: provider reasoning formats, determinism, usage and cost, max_tokens, faults, counters."""

from __future__ import annotations

import json
import socket
import time

import httpx2
import pytest

from distill_ray.builtin_problems import make_problems, simulated_response
from distill_ray.teacher.server import billing_key, content_key, start_teacher_server


def _post(base_url: str, body: dict, headers: dict | None = None, timeout: float = 5.0) -> httpx2.Response:
    return httpx2.post(f"{base_url}/chat/completions", json=body, headers=headers or {}, timeout=timeout)


def _ask(model: str, prompt: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": prompt}], "temperature": 0.7, "top_p": 1.0,
            **extra}


def test_reasoning_formats_match_providers(server_factory):
    server = server_factory()
    prompt = make_problems("math", "train", 1, seed=0)[0]["prompt"]
    concise = _post(server.base_url, _ask("sim/concise", prompt)).json()["choices"][0]["message"]
    verbose = _post(server.base_url, _ask("sim/verbose", prompt)).json()["choices"][0]["message"]
    deepseek = _post(server.base_url, _ask("sim/deepseek", prompt)).json()["choices"][0]["message"]
    assert concise["reasoning"] and "\\boxed{" in concise["content"] and "<think>" not in concise["content"]
    assert verbose["content"].startswith("<think>\n") and "</think>\n\n" in verbose["content"]
    assert "reasoning" not in verbose
    assert deepseek["reasoning_content"] and "reasoning" not in deepseek


def test_answer_is_the_simulated_teachers_and_deterministic(server_factory):
    server = server_factory()
    prompt = make_problems("math", "train", 1, seed=1)[0]["prompt"]
    body = _ask("sim/concise", prompt)
    first = _post(server.base_url, body, {"X-Distill-Sample-Index": "3"}).json()
    again = _post(server.base_url, body, {"X-Distill-Sample-Index": "3"}).json()
    key = f"{content_key('sim/concise', body['messages'], 0.7, 1.0)}:3"
    reasoning, content = simulated_response(prompt, "concise", 0.75, key)
    assert first["choices"][0]["message"]["content"] == content == again["choices"][0]["message"]["content"]
    assert first["choices"][0]["message"]["reasoning"] == reasoning


def test_usage_cost_and_n_choices(server_factory):
    server = server_factory(teachers={"m": {"style": "verbose", "correct_rate": 1.0, "price_in_per_mtok": 2.0,
                                            "price_out_per_mtok": 10.0}})
    prompt = make_problems("code", "train", 1, seed=0)[0]["prompt"]
    data = _post(server.base_url, _ask("m", prompt, n=3)).json()
    usage = data["usage"]
    assert len(data["choices"]) == 3 and [c["index"] for c in data["choices"]] == [0, 1, 2]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    expected = (usage["prompt_tokens"] * 2 + usage["completion_tokens"] * 10) / 1e6
    assert usage["cost"] == pytest.approx(expected, abs=1e-9)
    assert server.billed() == 3  # one billed response per sample


def test_max_tokens_cuts_and_says_length(server_factory):
    server = server_factory()
    prompt = make_problems("math", "train", 1, seed=0)[0]["prompt"]
    data = _post(server.base_url, _ask("sim/verbose", prompt, max_tokens=20)).json()
    choice = data["choices"][0]
    assert choice["finish_reason"] == "length"
    assert data["usage"]["completion_tokens"] <= 20
    assert "</think>" not in choice["message"]["content"]  # cut inside the reasoning, like a real model


def test_rate_limit_answers_429_with_retry_after_and_counts_early_retries(server_factory):
    # 0.5/s: two seconds between admissions, so the immediate retry is early even on a loaded machine
    server = server_factory(faults={"rate_limit_rps": 0.5, "rate_limit_burst": 1})
    prompt = make_problems("math", "train", 1, seed=0)[0]["prompt"]
    body = _ask("sim/concise", prompt)
    assert _post(server.base_url, body).status_code == 200
    limited = _post(server.base_url, body)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) >= 1 and 0 < int(limited.headers["retry-after-ms"]) <= 2000
    assert _post(server.base_url, body).status_code == 429  # retried at once: too early
    time.sleep(2.1)
    assert _post(server.base_url, body).status_code == 200
    counters = server.counters()
    assert counters["faults"]["early_retry"] == 1
    assert counters["status"] == {"200": 2, "429": 2}
    assert server.billed() == 2 and server.duplicates() == {billing_key("sim/concise", body["messages"], 0.7, 1.0,
                                                                        None, 0): 2}


def test_faults_are_not_billed(server_factory):
    server = server_factory(faults={"malformed_rate": 1.0})
    prompt = make_problems("math", "train", 1, seed=0)[0]["prompt"]
    response = _post(server.base_url, _ask("sim/concise", prompt))
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    dropping = server_factory(faults={"drop_rate": 1.0})
    with pytest.raises(httpx2.RemoteProtocolError):
        _post(dropping.base_url, _ask("sim/concise", prompt))
    hanging = server_factory(faults={"hang_rate": 1.0, "hang_s": 30})
    started = time.monotonic()
    with pytest.raises(httpx2.ReadTimeout):
        _post(hanging.base_url, _ask("sim/concise", prompt), timeout=0.3)
    assert time.monotonic() - started < 2
    assert server.billed() == dropping.billed() == hanging.billed() == 0
    assert dropping.counters()["faults"]["drop"] == 1 and hanging.counters()["faults"]["hang"] == 1


def test_errors_unknown_model_and_key(server_factory):
    server = server_factory(api_key="sekrit")
    prompt = "What is the capital of France?"
    assert _post(server.base_url, _ask("sim/concise", prompt)).status_code == 401
    ok = _post(server.base_url, _ask("sim/concise", prompt), {"Authorization": "Bearer sekrit"})
    assert ok.status_code == 200 and ok.json()["choices"][0]["message"]["content"]  # generic answer, not built-in
    assert _post(server.base_url, _ask("nope", prompt), {"Authorization": "Bearer sekrit"}).status_code == 404
    models = httpx2.get(f"{server.base_url}/models", headers={"Authorization": "Bearer sekrit"}).json()
    assert sorted(m["id"] for m in models["data"]) == ["sim/concise", "sim/deepseek", "sim/verbose"]


def test_binds_only_to_loopback(server_factory):
    server = server_factory()
    host, port = server.base_url.split("//")[1].split("/")[0].split(":")
    assert host == "127.0.0.1"
    with socket.create_connection((host, int(port)), timeout=2):
        pass
    with pytest.raises(ValueError):
        start_teacher_server(host="0.0.0.0", port=0)
