"""SIGKILL mid-run, then resume, with the openrouter profile's faults on: nothing lost, nothing stored paid twice.

The run is the seed's Sonnet shape: an `anthropic/*` model, reasoning asked for with a token budget, no temperature
or top_p, `require_reasoning`, through `distill-ray generate` in a real child process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from distill_ray.builtin_problems import make_problems
from distill_ray.teacher.cache import ResponseCache, namespace
from distill_ray.teacher.cli import generate_main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODEL = "anthropic/claude-sim"
FAULTS = {"error_in_200_rate": 0.08, "choice_error_rate": 0.04, "finish_error_rate": 0.04, "null_usage_rate": 0.04,
          "retry_after_503_rate": 0.04, "in_flight_402_rate": 0.03, "retry_after_s": 1.0, "seed": 11}


def _args(server, path: str, out: str) -> list[str]:
    return ["--provider", "openrouter", "--base-url", server.base_url, "--model", MODEL, "--problems", path,
            "--output", out, "--concurrency", "8", "--quiet", "--max-tokens", "1024", "--temperature", "none",
            "--top-p", "none", "--reasoning", '{"max_tokens": 800}', "--require-reasoning", "--max-retries", "10"]


def test_sigkill_and_resume_under_openrouter_faults(server_factory, tmp_path, capsys):
    problems = make_problems("math", "train", 30, seed=8)
    flagged = problems[5]
    server = server_factory(teachers={MODEL: {"style": "concise", "correct_rate": 0.8}},
                            faults={"latency_s": 0.05, "latency_jitter_s": 0.04, "latency_dist": "uniform", "seed": 2},
                            profile={**FAULTS, "moderation_prompts": [flagged["prompt"]]})
    path = tmp_path / "P.jsonl"
    path.write_text("".join(json.dumps({"id": p["id"], "prompt": p["prompt"]}) + "\n" for p in problems))
    out = str(tmp_path / "o")
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-m", "distill_ray.teacher.cli", "generate", *_args(server, str(path),
                              out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while server.billed() < 8 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    assert child.poll() is None, child.communicate()
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    time.sleep(0.3)  # the server sees the closed connections; nothing in flight is billed after this
    billed_at_kill = server.billed()
    cache = ResponseCache(os.path.join(out, "_cache"), namespace(server.base_url, MODEL)).load()
    # billed answers the killed process had written (a moderation verdict is stored but was never billed)
    stored_at_kill = sum(1 for k, r in cache.items() if not k.startswith("spend:") and r["cost_source"] != "none")
    assert 1 <= stored_at_kill < len(problems) and not os.path.exists(os.path.join(out, "traces.parquet"))

    codes = []
    for _ in range(3):  # a re-run retries whatever failed transiently; the stage ends complete
        codes.append(generate_main(_args(server, str(path), out)))
        if codes[-1] == 0:
            break
    assert codes[-1] == 0, codes
    rows = pq.read_table(os.path.join(out, "traces.parquet")).to_pylist()
    assert sorted(r["problem_id"] for r in rows) == sorted(p["id"] for p in problems)  # 0 rows lost
    for row in rows:
        if row["problem_id"] == flagged["id"]:
            assert row["failure"] == "moderation" and row["permanent"] and row["text"] == ""
        else:
            assert row["status"] == "ok" and row["reasoning"] and row["content"], row
    counters = server.counters()
    assert sum(counters["faults"].get(f"openrouter_{c}", 0) for c in (200, 402, 503)) > 0  # the faults did happen
    paid_twice = sum(v - 1 for v in counters["billed"].values())
    # nothing that was stored is paid again; only answers the killed process had not yet written can be
    assert paid_twice == billed_at_kill - stored_at_kill
    assert server.billed() == len(problems) - 1 + paid_twice
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["key_usage_end_usd"] == pytest.approx(counters["billed_cost_usd"])
    # the ledger is what the cache holds as paid; the provider also billed what the killed process never stored
    unstored = summary["key_usage_end_usd"] - summary["ledger_total_usd"]
    assert unstored == pytest.approx(0.0, abs=1e-7) if paid_twice == 0 else unstored > 1e-7
