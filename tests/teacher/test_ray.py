"""The generate stage on Ray: the Ray Data pipeline (the default) and the hand-fed actors, one cluster-wide limiter,
a call from inside a task, the same rows as the in-process path, and parts on disk that a resume builds on."""

from __future__ import annotations

import os

import pytest

ray = pytest.importorskip("ray")

from distill_ray.teacher import generate_traces  # noqa: E402
from distill_ray.teacher.parts import read_traces, trace_files  # noqa: E402
from distill_ray.teacher.ratelimit import limiter_name  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": REPO}})
    yield
    ray.shutdown()


def test_actors_share_one_limiter_and_pay_nothing_twice(ray_cluster, server_factory, problems, teacher_config,
                                                         tmp_path):
    server = server_factory(faults={"latency_s": 0.05, "error_rate": 0.1, "drop_rate": 0.05,
                                    "rate_limit_rps": 60, "rate_limit_burst": 5, "seed": 11})
    teacher = teacher_config(server.base_url, samples_per_problem=2, actors=2, concurrency=32, max_rps=50)
    summary = generate_traces(problems, "c", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                              progress_interval_s=0)
    rows = read_traces(str(tmp_path / "o"))
    assert summary["ok"] == len(rows) == 80 and server.duplicates() == {} and server.billed() == 80
    # two actors, one pace: 50/s under the server's 60/s. Two unshared paces (100/s) would draw ~25 429s here; a few
    # come from scheduling jitter on a loaded machine (6 seen at load 15), so the bound is well between the two
    assert server.counters()["status"].get("429", 0) <= 10
    assert summary["errors_by_kind"].get("5xx", 0) > 0 and summary["paid"] == 80
    limiter = ray.get_actor(limiter_name(server.base_url, "sim/concise"), namespace="distill-ray")
    assert ray.get(limiter.state.remote())["granted"] >= 80


def test_generate_from_inside_a_ray_task(ray_cluster, server_factory, problems, teacher_config, tmp_path):
    server = server_factory()
    teacher = teacher_config(server.base_url, "sim/verbose", actors=2)

    @ray.remote(num_cpus=1)
    def trial(problems, teacher, out, cache):
        return generate_traces(problems, "v", teacher, out, cache_dir=cache, progress_interval_s=0)

    out, cache = str(tmp_path / "o"), str(tmp_path / "c")
    summary = ray.get(trial.remote(problems[:12], teacher, out, cache))
    assert summary["ok"] == 12 and summary["paid"] == 12
    again = ray.get(trial.remote(problems[:12], teacher, out, cache))
    assert again["requests"] == 0 and server.duplicates() == {}


@pytest.mark.parametrize("pipeline", ["data", "actors"])
def test_actors_stop_together_on_402_and_a_top_up_pays_only_for_the_rest(ray_cluster, server_factory, problems,
                                                                          teacher_config, tmp_path, pipeline):
    from distill_ray.teacher.client import CreditsExhausted

    model = "deepseek/r1-sim"
    flagged = problems[7]
    server = server_factory(teachers={model: {"style": "verbose", "correct_rate": 0.5}},
                            profile={"error_in_200_rate": 1.0, "first_attempt_only": True,
                                     "moderation_prompts": [flagged["prompt"]]})
    key_file = tmp_path / "key"
    key_file.write_text("sk-sim")
    teacher = teacher_config(server.base_url, model, provider="openrouter", actors=2, concurrency=8,
                             api_key_file=str(key_file))
    server.set_spend_limit(0.004)  # a few answers' worth: the 402 comes to both actors mid-run
    out, cache = str(tmp_path / "o"), str(tmp_path / "c")
    with pytest.raises(CreditsExhausted, match="credits"):
        generate_traces(problems, "r1", teacher, out, cache_dir=cache, progress_interval_s=0, pipeline=pipeline)
    stored = [r for r in read_traces(str(tmp_path / "o")) if r["status"] == "ok"]
    assert 1 <= len(stored) == server.billed() < len(problems) - 1  # every paid answer is stored
    server.set_spend_limit(None)  # topped up
    summary = generate_traces(problems, "r1", teacher, out, cache_dir=cache, progress_interval_s=0, pipeline=pipeline)
    assert summary["ok"] == len(problems) - 1 and summary["failure_reasons"] == {"moderation": 1}
    assert summary["paid"] == len(problems) - 1 - len(stored) and summary["complete"]
    assert server.duplicates() == {} and server.billed() == len(problems) - 1


def test_a_key_refused_mid_run_stops_the_pipeline_after_storing_what_was_billed(ray_cluster, server_factory,
                                                                                problems, teacher_config, tmp_path):
    from distill_ray.teacher.client import FatalTeacherError

    model = "deepseek/r1-sim"
    server = server_factory(teachers={model: {"style": "verbose", "correct_rate": 0.5}},
                            profile={"key_disabled_after": 12}, faults={"latency_s": 0.2})
    teacher = teacher_config(server.base_url, model, provider="openrouter", actors=2, concurrency=8)
    with pytest.raises(FatalTeacherError, match="refused"):
        generate_traces(problems, "r1", teacher, str(tmp_path / "o"), cache_dir=str(tmp_path / "c"),
                        progress_interval_s=0, pipeline="data")
    rows = read_traces(str(tmp_path / "o"))
    assert len([r for r in rows if r["status"] == "ok"]) == server.billed() == 12  # every billed answer stored
    assert {r["failure"] for r in rows if r["status"] != "ok"} == {"fatal"}


_SAME = ("problem_id", "sample_index", "status", "text", "content", "reasoning", "finish_reason", "failure",
         "prompt_tokens", "completion_tokens")


def test_ray_data_gives_the_same_rows_as_the_in_process_path(ray_cluster, server_factory, problems, teacher_config,
                                                              tmp_path):
    server = server_factory(faults={"latency_s": 0.02, "error_rate": 0.1, "seed": 5})
    teacher = teacher_config(server.base_url, samples_per_problem=2, actors=2, concurrency=16)
    local = generate_traces(problems, "c", teacher, str(tmp_path / "local"), cache_dir=str(tmp_path / "c1"),
                            progress_interval_s=0, use_ray=False)
    data = generate_traces(problems, "c", teacher, str(tmp_path / "data"), cache_dir=str(tmp_path / "c2"),
                           progress_interval_s=0, use_ray=True, pipeline="data")
    parts = [os.path.basename(p) for p in trace_files(str(tmp_path / "data"))]
    assert parts and all(p.startswith("part-") for p in parts)  # parts only: no final traces.parquet

    def key(rows):
        return sorted(tuple(r[c] for c in _SAME) for r in rows)

    assert key(read_traces(str(tmp_path / "data"))) == key(read_traces(str(tmp_path / "local")))
    assert len(read_traces(str(tmp_path / "data"))) == 80
    fields = ("ok", "failed", "paid", "from_cache", "rows", "failure_reasons", "complete", "truncated")
    assert {k: data[k] for k in fields} == {k: local[k] for k in fields}


_CHILD = """
import json, sys
import ray
from distill_ray.config import TeacherConfig
from distill_ray.teacher import generate_traces
address, server, problems, out, cache = sys.argv[1:6]
ray.init(address=address, log_to_driver=False)
problems = [json.loads(line) for line in open(problems)]
teacher = TeacherConfig(provider="openai-compatible", base_url=server, model="sim/concise", concurrency=8, actors=2,
                        request_timeout_s=5.0, retry_base_delay_s=0.02, retry_max_delay_s=0.2,
                        sampling={"max_tokens": 2048})
generate_traces(problems, "c", teacher, out, cache_dir=cache, progress_interval_s=0, pipeline="data")
"""


def test_sigkill_of_the_ray_data_driver_leaves_its_parts_and_a_resume_pays_nothing_twice(
        ray_cluster, server_factory, teacher_config, tmp_path):
    import json
    import signal
    import subprocess
    import sys
    import time

    from distill_ray.builtin_problems import make_problems
    from distill_ray.teacher.cache import ResponseCache, namespace

    problems = make_problems("math", "train", 60, seed=9)
    server = server_factory(faults={"latency_s": 0.1, "latency_jitter_s": 0.05, "latency_dist": "uniform",
                                    "error_rate": 0.05, "seed": 4})
    path = tmp_path / "P.jsonl"
    path.write_text("".join(json.dumps({"id": p["id"], "prompt": p["prompt"]}) + "\n" for p in problems))
    out, cache = str(tmp_path / "o"), str(tmp_path / "c")
    address = ray.get_runtime_context().gcs_address
    env = {**os.environ, "PYTHONPATH": REPO + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.Popen([sys.executable, "-c", _CHILD, address, server.base_url, str(path), out, cache],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(trace_files(out)) < 2 and time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.01)
    assert child.poll() is None, child.communicate()
    child.send_signal(signal.SIGKILL)
    child.wait(10)
    # the job's actors are killed once Ray sees the driver gone; wait until the server stops billing
    last, still = server.billed(), 0
    while still < 20 and time.monotonic() < deadline:
        time.sleep(0.1)
        now = server.billed()
        still, last = (still + 1, now) if now == last else (0, now)
    billed_at_kill = server.billed()
    parts_at_kill = set(trace_files(out))
    rows_at_kill = read_traces(out)
    records = ResponseCache(cache, namespace(server.base_url, "sim/concise")).load()
    stored_at_kill = sum(1 for k in records if not k.startswith("spend:"))
    assert parts_at_kill and 1 <= len(rows_at_kill) < len(problems) and billed_at_kill < len(problems)
    assert sum(1 for r in rows_at_kill if r["status"] == "ok") <= stored_at_kill  # a part row is in the cache

    teacher = teacher_config(server.base_url, actors=2, concurrency=8)
    summary = generate_traces(problems, "c", teacher, out, cache_dir=cache, progress_interval_s=0, pipeline="data")
    if not summary["complete"]:  # a transient failure in the resume: run again, as the sweep's --resume would
        summary = generate_traces(problems, "c", teacher, out, cache_dir=cache, progress_interval_s=0,
                                  pipeline="data")
    rows = read_traces(out)
    assert parts_at_kill <= set(trace_files(out))  # finished parts stay; resumed rows are newer parts
    assert sorted(r["problem_id"] for r in rows) == sorted(p["id"] for p in problems)  # one current row each
    assert all(r["status"] == "ok" for r in rows) and summary["ok"] == len(problems) and summary["complete"]
    paid_twice = sum(v - 1 for v in server.counters()["billed"].values())
    assert paid_twice == billed_at_kill - stored_at_kill  # only answers the killed run had not stored
    assert server.billed() == len(problems) + paid_twice
