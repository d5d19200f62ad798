"""The throughput benchmark runs in its CPU (tiny) mode and reports both paths on both architectures."""

from __future__ import annotations

import json

import pytest


def test_train_throughput_tiny_mode(benchmark_script, capsys):
    summary = benchmark_script("train_throughput").main(["--tiny"])
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert json.loads(last) == json.loads(json.dumps(summary))
    assert summary["tiny"] is True and set(summary["models"]) == {"llama-3.1-8b", "qwen3-30b-a3b"}
    for result in summary["models"].values():
        assert result["core"]["tokens_per_s"] > 0 and result["plain"]["tokens_per_s"] > 0
        assert result["speedup"] == pytest.approx(result["core"]["tokens_per_s"] / result["plain"]["tokens_per_s"])
    moe = summary["models"]["qwen3-30b-a3b"]
    assert moe["params_active"] < moe["params_total"]  # 2 of 4 experts per token count as active
    dense = summary["models"]["llama-3.1-8b"]
    assert dense["params_active"] == dense["params_total"]
    assert moe["expert_lora"] and not dense["expert_lora"]  # seed.yaml's LoRA targets


def test_both_checkpointing_settings_and_mfu_on_the_tokens_each_path_computes(benchmark_script, capsys):
    """Like for like: both paths under each checkpointing setting; MFU from the stated formula, crediting the LM head
    only on response tokens for the core and on every real token for the plain loop."""
    summary = benchmark_script("train_throughput").main(["--tiny", "--model", "llama-3.1-8b", "--checkpointing",
                                                        "both", "--peak-tflops", "1"])
    result = summary["models"]["llama-3.1-8b"]
    assert set(result["runs"]) == {"on", "off"} and result["core"] == result["runs"]["on"]["core"]
    body = result["params_active"] - result["params_head"]
    for ckpt, run in result["runs"].items():
        for label, entry in (("core", run["core"]), ("plain", run["plain"])):
            assert entry["tokens"] == run["core"]["tokens"] and entry["loss_tokens"] < entry["tokens"]
            head_tokens = entry["loss_tokens"] if label == "core" else entry["tokens"]
            flops = 4 * body * entry["tokens"] + 4 * result["params_head"] * head_tokens
            assert entry["mfu"] == pytest.approx(flops / entry["seconds"] / 1e12)
            recompute = 2 * body * entry["tokens"] if ckpt == "on" else 0
            assert entry["hfu"] == pytest.approx((flops + recompute) / entry["seconds"] / 1e12)


@pytest.mark.slow
def test_real_shapes_run_on_cpu_with_one_layer(benchmark_script, capsys):
    """The GPU command's path (published shapes, LoRA on them, both loops, the JSON) on the CPU with one decoder
    layer, so a device session does not find a shape or argument error first (~40 s, ~6 GB)."""
    summary = benchmark_script("train_throughput").main([
        "--device", "cpu", "--layers", "1", "--steps", "1", "--warmup", "0", "--batch", "2", "--examples", "2",
        "--max-length", "128", "--token-budget", "256", "--plain-batch", "2", "--moe-lora", "attention"])
    assert summary["tiny"] is False and summary["device"] == "cpu"
    llama, moe = summary["models"]["llama-3.1-8b"], summary["models"]["qwen3-30b-a3b"]
    for result in (llama, moe):
        assert result["layers"] == 1 and result["layers_note"] == "requested"
        assert result["core"]["tokens_per_s"] > 0 and result["plain"]["tokens_per_s"] > 0
    # r 32 on q/k/v/o plus the MLP for Llama (one layer): the count the adapter config implies
    assert llama["trainable"] == 32 * ((4096 + 4096) + (4096 + 1024) * 2 + (4096 + 4096)
                                       + (4096 + 14336) * 2 + (14336 + 4096))
    # attention only here (expert LoRA on the 128 real-size experts would need ~3x the fp32 expert weights of host
    # memory on this shared machine; the tiny mode covers the expert path)
    assert moe["trainable"] == 32 * ((2048 + 4096) + (2048 + 512) * 2 + (4096 + 2048))
    assert moe["params_active"] < moe["params_total"]
