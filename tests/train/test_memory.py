"""The memory estimate: its parameter counts are the ones PEFT trains, on the tiny models its activations + logits
figure is at least the measured peak of a step and at most 40% above it (benchmarks/train_memory.py, CPU, fp32, with
and without activation checkpointing, with expert LoRA), and on the seed's real shapes it says what fits the cluster's
cards (cluster.yaml: H100 80 GB for Qwen3-30B-A3B, L40S 48 GB for Llama-3.1-8B)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from distill_ray.config import LoraConfig, StudentConfig, TrainingConfig, load_sweep
from distill_ray.train.memory import (
    UnknownShapeError,
    estimate_train_memory,
    format_memory_rows,
    largest_row_tokens,
    model_shape,
    parameter_counts,
)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow  # five subprocesses of 10-60 s each on 2 shared cores
@pytest.mark.parametrize("student,flags", [
    ("builtin:tiny-llama", []),
    ("builtin:tiny-llama", ["--checkpointing"]),
    ("builtin:tiny-qwen3-moe", []),
    ("builtin:tiny-qwen3-moe", ["--checkpointing"]),
    ("builtin:tiny-qwen3-moe", ["--expert-lora"]),
], ids=["llama", "llama-ckpt", "moe", "moe-ckpt", "moe-experts"])
def test_estimate_bounds_the_measured_peak_of_the_tiny_models(student, flags, private_model_cache):
    out = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "train_memory.py"), "--student", student,
                          "--rows", "48", "--length", "256", *flags],
                         capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": ROOT})
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["trainable_parameters"] == result["estimated_trainable_parameters"]
    assert result["measured_dynamic_gib"] > 0.1  # 12K tokens: well above allocator noise
    assert 1.0 <= result["ratio"] <= 1.4, result


def test_real_shapes_parameter_counts():
    qwen = StudentConfig(model="Qwen/Qwen3-30B-A3B-Base", deepspeed_stage=3, num_workers=8,
                         lora=LoraConfig(r=32, alpha=64))
    llama = StudentConfig(model="meta-llama/Llama-3.1-8B-Instruct", deepspeed_stage=2, num_workers=4,
                          lora=LoraConfig(r=32, alpha=64, target_modules=["q_proj", "k_proj", "v_proj", "o_proj",
                                                                          "gate_proj", "up_proj", "down_proj"]))
    training = TrainingConfig()
    # one layer's LoRA as tests/train/test_benchmark.py counts it on the built model, times the layers
    assert estimate_train_memory(llama, training)["trainable_parameters"] == 32 * 32 * (
        (4096 + 4096) + (4096 + 1024) * 2 + (4096 + 4096) + (4096 + 14336) * 2 + (14336 + 4096))
    assert estimate_train_memory(qwen, training)["trainable_parameters"] == 48 * 32 * (
        (2048 + 4096) + (2048 + 512) * 2 + (4096 + 2048))
    experts = qwen.model_copy(update={"lora": qwen.lora.model_copy(update={"expert_lora": True})})
    est = estimate_train_memory(experts, training)
    assert est["trainable_parameters"] == 48 * 32 * ((2048 + 4096) + (2048 + 512) * 2 + (4096 + 2048)
                                                     + 128 * ((2048 + 2 * 768) + (768 + 2048)))
    assert 8.0e9 < estimate_train_memory(llama, training)["base_parameters"] < 8.1e9
    assert 30.4e9 < est["base_parameters"] < 30.6e9


def test_seed_fits_its_node_types_and_a_long_override_does_not():
    sweep = load_sweep(os.path.join(ROOT, "sweeps", "seed.yaml"))
    gpu = {"qwen3-30b-a3b": 80.0, "llama-3.1-8b": 48.0}
    estimates = {name: estimate_train_memory(s, sweep.training) for name, s in sweep.students.items()}
    for name, est in estimates.items():
        assert est["total_gib"] < 0.9 * gpu[name], (name, est["total_gib"])
        assert est["activations_checkpointing_gib"] < est["activations_no_checkpointing_gib"]
        assert est["total_gib"] == pytest.approx(sum(est["components"].values()))
    rows = format_memory_rows(estimates, gpu)
    assert len(rows) == 3 and all(name in "\n".join(rows) for name in gpu)
    # the example: 32K-token examples with no token budget on the L40S type
    long = load_sweep(os.path.join(ROOT, "sweeps", "seed.yaml"),
                      ["training.max_length=32768", "training.micro_batch_tokens=null"])
    assert long.training.micro_batch_tokens is None
    assert estimate_train_memory(long.students["llama-3.1-8b"], long.training)["total_gib"] > 48.0
    # ZeRO-3 shards the frozen base, ZeRO-2 does not
    one = estimate_train_memory(sweep.students["qwen3-30b-a3b"], sweep.training, world=1)
    sharded = estimates["qwen3-30b-a3b"]["components"]["weights_gib"]
    assert one["components"]["weights_gib"] == pytest.approx(8 * sharded)


def test_unknown_model_is_a_clear_error():
    with pytest.raises(UnknownShapeError, match="some/model: no known shape"):
        estimate_train_memory(StudentConfig(model="some/model"), TrainingConfig())


def test_the_largest_row_is_what_the_data_path_builds():
    """An example longer than the token budget is packed alone (train.data.group_examples), so the largest row holds
    max_length tokens; the real grouping of one such example and a few short ones shows it."""
    from distill_ray.train.data import EncodedExample, group_examples

    budget = TrainingConfig(micro_batch=16, micro_batch_tokens=1024, max_length=4096)
    assert largest_row_tokens(budget) == 4096
    long = EncodedExample("long", tuple(range(4096)), tuple(range(4096)), 0)
    short = [EncodedExample(str(i), tuple(range(100)), tuple(range(100)), 0) for i in range(5)]
    groups = group_examples([long, *short], budget.micro_batch, budget.micro_batch_tokens)
    assert max(sum(len(e.input_ids) for e in g) for g in groups) == largest_row_tokens(budget)
    assert largest_row_tokens(budget.model_copy(update={"max_length": 512})) == 1024
    assert largest_row_tokens(budget.model_copy(update={"micro_batch_tokens": None})) == 16 * 4096
    assert largest_row_tokens(budget.model_copy(update={"packing": False})) == 16 * 4096
    # the case: seed.yaml with max_length 65,536 plans activations for a 65,536-token row, not 16,384
    sweep = load_sweep(os.path.join(ROOT, "sweeps", "seed.yaml"), ["training.max_length=65536"])
    est = estimate_train_memory(sweep.students["llama-3.1-8b"], sweep.training)
    assert est["tokens_per_micro_batch"] == 65536


def test_mixtral_style_configs_count_their_experts(tmp_path):
    """Mixtral-style configs name the experts num_local_experts and give the expert width as intermediate_size."""
    config = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 1000, "num_local_experts": 8, "num_experts_per_tok": 2}
    (tmp_path / "config.json").write_text(json.dumps(config))
    shape = model_shape(str(tmp_path))
    assert (shape["experts"], shape["experts_per_token"], shape["expert_intermediate"]) == (8, 2, 128)
    base, _, _ = parameter_counts(shape, LoraConfig(r=8, alpha=16))
    assert base > 2 * 8 * 3 * 64 * 128  # every expert of both layers counted
