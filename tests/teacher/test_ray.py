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
    assert server.counters()["status"].get("429", 0) <= 2  # two actors, one pace: 50/s under the server's 60/s
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


def test_actors_stop_together_on_402_and_a_top_up_pays_only_for_the_rest(ray_cluster, server_factory, problems,
                                                                          teacher_config, tmp_path):
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
        generate_traces(problems, "r1", teacher, out, cache_dir=cache, progress_interval_s=0)
    stored = [r for r in read_traces(str(tmp_path / "o")) if r["status"] == "ok"]
    assert 1 <= len(stored) == server.billed() < len(problems) - 1  # every paid answer is stored
    server.set_spend_limit(None)  # topped up
    summary = generate_traces(problems, "r1", teacher, out, cache_dir=cache, progress_interval_s=0)
    assert summary["ok"] == len(problems) - 1 and summary["failure_reasons"] == {"moderation": 1}
    assert summary["paid"] == len(problems) - 1 - len(stored) and summary["complete"]
    assert server.duplicates() == {} and server.billed() == len(problems) - 1


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
