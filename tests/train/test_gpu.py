"""GPU-only checks (skipped without CUDA): bf16 training with the GPU attention kernel, and the real-size benchmark."""

from __future__ import annotations

import pytest
import torch

from distill_ray.config import LoraConfig, StudentConfig, TrainingConfig
from distill_ray.train import load_student, train_student

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_bf16_training_on_gpu_learns_and_reloads(tmp_path, concise_examples):
    student = StudentConfig(model="builtin:tiny-qwen3-moe", lora=LoraConfig(r=16, alpha=32), dtype="auto")
    training = TrainingConfig(samples=400, global_batch=16, micro_batch=16, learning_rate=5e-3, checkpoint_every=25,
                              max_length=256, micro_batch_tokens=1024)
    summary = train_student(concise_examples("code", 100), student, training, str(tmp_path), use_ray=False)
    curve = [loss for _, loss in summary["loss_curve"]]
    assert curve[-1] < 0.2 * curve[0]
    model, tokenizer = load_student(student, summary["checkpoints"][-1]["path"], device="cuda")
    assert next(model.parameters()).dtype == torch.bfloat16


@pytest.mark.slow
def test_real_size_benchmark_llama(benchmark_script):
    summary = benchmark_script("train_throughput").main(["--model", "llama-3.1-8b", "--steps", "2", "--warmup", "1",
                                                        "--batch", "16", "--checkpointing", "both"])
    result = summary["models"]["llama-3.1-8b"]
    assert result["core"]["tokens_per_s"] > 0 and result["core"]["mfu"] > 0
