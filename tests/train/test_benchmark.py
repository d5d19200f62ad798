"""The throughput benchmark runs in its CPU (tiny) mode and reports both paths on both architectures."""

from __future__ import annotations

import importlib.util
import json
import os

import pytest


def test_train_throughput_tiny_mode(capsys):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "train_throughput.py")
    spec = importlib.util.spec_from_file_location("train_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    summary = module.main(["--tiny"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(summary))
    assert summary["tiny"] is True and set(summary["models"]) == {"llama-8b", "qwen3-30b-a3b"}
    for result in summary["models"].values():
        assert result["core"]["tokens_per_s"] > 0 and result["plain"]["tokens_per_s"] > 0
        assert result["speedup"] == pytest.approx(result["core"]["tokens_per_s"] / result["plain"]["tokens_per_s"])
    moe = summary["models"]["qwen3-30b-a3b"]
    assert moe["params_active"] < moe["params_total"]  # 2 of 4 experts per token count as active
    dense = summary["models"]["llama-8b"]
    assert dense["params_active"] == dense["params_total"]


def test_active_parameters_of_the_real_shapes():
    """Built on the meta device (no memory): Llama-3.1-8B has ~7.5B matmul weights (8.03B with the input
    embedding); Qwen3-30B-A3B ~30.2B of which ~3.0B are active per token (30.5B / 3.3B with the embedding)."""
    import torch

    path = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "train_throughput.py")
    spec = importlib.util.spec_from_file_location("train_throughput", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    llama = module.build_model(module.LLAMA_31_8B, "meta", torch.bfloat16, "sdpa")
    total, active = module.active_parameters(llama)
    embed = llama.get_input_embeddings().weight.numel()
    assert total == active and 8.0e9 < total + embed < 8.1e9
    qwen = module.build_model(module.QWEN3_30B_A3B, "meta", torch.bfloat16, "sdpa")
    total, active = module.active_parameters(qwen)
    embed = qwen.get_input_embeddings().weight.numel()
    assert 30.3e9 < total + embed < 30.7e9
    assert 3.2e9 < active + embed < 3.45e9
