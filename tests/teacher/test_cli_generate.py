"""`distill-ray generate --base-url ...`: input errors, dry run, resume, and kill-and-resume in a real process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pyarrow.parquet as pq
import pytest

from distill_ray.teacher.cache import ResponseCache, namespace
from distill_ray.teacher.cli import generate_main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _write_problems(path, problems) -> str:
    with open(path, "w", encoding="utf-8") as handle:
        for p in problems:
            handle.write(json.dumps({"id": p["id"], "prompt": p["prompt"]}) + "\n")
    return str(path)


@pytest.mark.parametrize("content,message", [
    ('{"id": "a", "prompt": "x"}\n{"prompt": "y"}\n', ":2: field 'id'"),
    ('{"id": "a"}\n', ":1: field 'prompt'"),
    ('{"id": "a", "prompt": ""}\n', ":1: field 'prompt'"),
    ('{"id": "a", "prompt": "x"}\n\n{"id": "a", "prompt": "y"}\n', ":3: field 'id': 'a' already used on line 1"),
    ('{"id": "a", "prompt": "x"}\nnot json\n', ":2: not valid JSON"),
    ('["a", "x"]\n', ":1: a row must be a JSON object"),
])
def test_bad_input_exits_2_naming_file_line_field(tmp_path, capsys, content, message):
    path = tmp_path / "P.jsonl"
    path.write_text(content)
    code = generate_main(["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--problems", str(path),
                          "--output", str(tmp_path / "o")])
    assert code == 2
    assert f"{path}{message}" in capsys.readouterr().err


def test_missing_file_and_bad_argument_exit_2(tmp_path, capsys):
    args = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--output", str(tmp_path / "o")]
    assert generate_main([*args, "--problems", str(tmp_path / "none.jsonl")]) == 2
    assert "none.jsonl: file not found" in capsys.readouterr().err
    path = _write_problems(tmp_path / "P.jsonl", [{"id": "a", "prompt": "x"}])
    assert generate_main([*args, "--problems", path, "--concurrency", "0"]) == 2
    assert "concurrency" in capsys.readouterr().err


def test_dry_run_then_run_then_resume(server_factory, problems, tmp_path, capsys, monkeypatch):
    server = server_factory()
    monkeypatch.setenv("SIM_KEY", "anything")
    path = _write_problems(tmp_path / "P.jsonl", problems[:10])
    args = ["--base-url", server.base_url, "--model", "sim/verbose", "--api-key-env", "SIM_KEY", "--problems", path,
            "--output", str(tmp_path / "o"), "--samples", "2", "--quiet", "--max-tokens", "4096"]
    assert generate_main([*args, "--dry-run", "--price-out", "10"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["requests"] == 20 and plan["est_cost_usd"] > 0 and server.counters()["requests"] == 0
    assert generate_main(args) == 0
    first = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert first["paid"] == 20 and first["ok"] == 20
    rows = pq.read_table(tmp_path / "o" / "traces.parquet").to_pylist()
    assert {"problem_id", "sample_index", "content", "reasoning", "finish_reason", "prompt_tokens",
            "completion_tokens", "cost_usd", "status"} <= set(rows[0])
    assert generate_main(args) == 0
    again = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert again["requests"] == 0 and again["from_cache"] == 20 and server.duplicates() == {}


def _spawn(server, path, out) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    argv = [sys.executable, "-m", "distill_ray.teacher.cli", "generate", "--base-url", server.base_url, "--model",
            "sim/concise", "--problems", path, "--output", out, "--concurrency", "8", "--quiet", "--max-tokens", "512"]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_billed(server, n: int, child: subprocess.Popen) -> None:
    deadline = time.monotonic() + 30
    while server.billed() < n and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    assert child.poll() is None, child.communicate()


def test_sigkill_then_resume_pays_only_for_what_was_in_flight(server_factory, problems, tmp_path):
    server = server_factory(faults={"latency_s": 0.05, "latency_jitter_s": 0.04, "latency_dist": "uniform",
                                    "seed": 3})
    path = _write_problems(tmp_path / "P.jsonl", problems)
    out = str(tmp_path / "o")
    child = _spawn(server, path, out)
    _wait_billed(server, 15, child)
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    time.sleep(0.3)  # the server notices the closed connections; nothing in flight is billed after this
    billed_at_kill = server.billed()
    cached_at_kill = len(ResponseCache(os.path.join(out, "_cache"), namespace(server.base_url, "sim/concise")).load())
    assert 5 <= cached_at_kill < len(problems) and not os.path.exists(os.path.join(out, "traces.parquet"))
    assert generate_main(["--base-url", server.base_url, "--model", "sim/concise", "--problems", path, "--output", out,
                          "--concurrency", "8", "--quiet", "--max-tokens", "512"]) == 0
    rows = pq.read_table(os.path.join(out, "traces.parquet")).to_pylist()
    assert len(rows) == len(problems) and all(r["status"] == "ok" for r in rows)
    paid_twice = sum(v - 1 for v in server.counters()["billed"].values())
    # only responses the provider had sent but the killed process had not yet stored can be paid again
    assert paid_twice == billed_at_kill - cached_at_kill <= 8


def test_sigterm_stores_in_flight_then_resume_pays_nothing_twice(server_factory, problems, tmp_path):
    server = server_factory(faults={"latency_s": 0.05, "seed": 4})
    path = _write_problems(tmp_path / "P.jsonl", problems)
    out = str(tmp_path / "o")
    child = _spawn(server, path, out)
    _wait_billed(server, 10, child)
    child.send_signal(signal.SIGTERM)
    stdout, _ = child.communicate(timeout=30)
    assert child.returncode == 130
    partial = json.loads(stdout.strip().splitlines()[-1])
    assert 10 <= partial["ok"] < len(problems)
    rows = pq.read_table(os.path.join(out, "traces.parquet")).to_pylist()
    assert all(r["status"] == "ok" or r["error"].startswith("interrupted") for r in rows)
    assert generate_main(["--base-url", server.base_url, "--model", "sim/concise", "--problems", path, "--output", out,
                          "--concurrency", "8", "--quiet", "--max-tokens", "512"]) == 0
    assert server.duplicates() == {} and server.billed() == len(problems)
