"""The evaluation pool: one warm engine per actor, a dead actor replaced and its request re-queued, a finished
evaluation answered from disk after a restart, and the vLLM engine built with the sweep's tensor parallelism."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import types

import pytest

from distill_ray.builtin_problems import make_problems
from distill_ray.config import EvaluationConfig, StudentConfig
from distill_ray.evaluate.pool import EvalPool, EvalWorker

STUDENT = StudentConfig(model="builtin:tiny-llama", evaluation={"actors": 1, "cpus": 0.5})
EVALUATION = EvaluationConfig(benchmarks=[{"name": "mini-math", "subset": 4}], max_new_tokens=8, batch_size=4)
BENCHMARKS = {"mini-math": make_problems("math", "mini-math", 4, 0)}


def test_plain_worker_scores_base_and_adapter_on_one_engine(tmp_path, lora_adapter):
    worker = EvalWorker(STUDENT.model_dump(), EVALUATION.model_dump(), BENCHMARKS)
    base = worker.evaluate(None, 0, 0, str(tmp_path / "base"))
    step = worker.evaluate(lora_adapter(STUDENT.model, 0), 10, 160, str(tmp_path / "step-10"))
    assert [s["n"] for s in base + step] == [4, 4]
    assert worker.engine_loads == 1
    record = json.load(open(tmp_path / "step-10" / "worker.json"))
    assert record["engine_loads"] == 1 and record["pid"] == os.getpid()
    stamp = (tmp_path / "step-10" / "scores.json").stat().st_mtime_ns
    assert worker.evaluate(lora_adapter(STUDENT.model, 0), 10, 160, str(tmp_path / "step-10")) == step
    assert (tmp_path / "step-10" / "scores.json").stat().st_mtime_ns == stamp  # read back, not recomputed


@pytest.mark.slow
def test_killed_actor_is_replaced_and_its_request_requeued_then_a_new_pool_reads_from_disk(tmp_path, lora_adapter):
    import ray
    import ray._private.state as gcs_state

    from distill_ray.paths import cache_root

    adapter = lora_adapter(STUDENT.model, 0)
    out = str(tmp_path / "step-10")
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        pool_class = ray.remote(num_cpus=0, max_concurrency=100)(EvalPool)
        args = ("tiny-llama", STUDENT.model_dump(), EVALUATION.model_dump(), BENCHMARKS)
        pool = pool_class.remote(*args, cache_root=cache_root())
        ref = pool.evaluate.remote(adapter, 10, 160, out)
        deadline = time.time() + 120
        while ray.get(pool.stats.remote())["in_flight"] == 0 and time.time() < deadline:
            time.sleep(0.05)
        first = ray.get(pool.actors.remote())[0]
        pid = None
        while pid is None and time.time() < deadline:  # the actor's process, from the GCS
            info = gcs_state.actors().get(first, {})
            pid = info.get("Pid") if info.get("State") == "ALIVE" else None
            time.sleep(0.05)
        assert pid, "the evaluation actor never came up"
        os.kill(pid, signal.SIGKILL)  # mid-request
        scores = ray.get(ref, timeout=300)
        stats = ray.get(pool.stats.remote())
        assert stats["replaced"] == 1 and stats["started"] == 2
        record = json.load(open(os.path.join(out, "worker.json")))
        assert record["actor_id"] == stats["actors"][1] != first  # the replacement scored it, on one engine load
        assert record["engine_loads"] == 1 and scores[0]["n"] == 4
        ray.kill(pool)

        stamp = os.stat(os.path.join(out, "scores.json")).st_mtime_ns
        again = pool_class.remote(*args, cache_root=cache_root())  # as after a driver restart
        assert ray.get(again.evaluate.remote(adapter, 10, 160, out), timeout=120) == scores
        assert ray.get(again.stats.remote())["answered_from_disk"] == 1
        assert os.stat(os.path.join(out, "scores.json")).st_mtime_ns == stamp
    finally:
        ray.shutdown()


def test_vllm_engine_is_built_with_the_students_tensor_parallelism(monkeypatch):
    """vllm cannot be installed here: a fake `vllm.LLM` records what the engine is built with."""
    built: list[dict] = []

    class FakeLLM:
        def __init__(self, **kwargs):
            built.append(kwargs)

    fake = types.ModuleType("vllm")
    fake.LLM = FakeLLM
    monkeypatch.setitem(sys.modules, "vllm", fake)
    student = STUDENT.model_copy(update={"evaluation": STUDENT.evaluation.model_copy(
        update={"gpus": 2.0, "tensor_parallel": 2})})
    worker = EvalWorker(student.model_dump(), EVALUATION.model_copy(update={"backend": "vllm"}).model_dump(),
                        BENCHMARKS)
    worker._engine()
    assert len(built) == 1
    assert built[0]["tensor_parallel_size"] == 2 and built[0]["enable_lora"] is True
    assert built[0]["max_lora_rank"] >= student.lora.r
    worker._engine()
    assert len(built) == 1 and worker.engine_loads == 1  # warm: built once


def test_tensor_parallel_needs_as_many_gpus():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="tensor_parallel 2 needs gpus >= 2"):
        StudentConfig(model="builtin:tiny-llama", evaluation={"gpus": 1, "tensor_parallel": 2})
