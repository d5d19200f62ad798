"""The evaluation throughput benchmark runs: its CPU mode on the tiny students, and its GPU path (the published
shapes) on the CPU with one layer and short prompts, so a device session does not meet an argument or shape error."""

from __future__ import annotations

import json
import random

import pytest


def test_cpu_mode_compares_backend_and_plain_loop(benchmark_script, capsys):
    summary = benchmark_script("eval_throughput").main([
        "--students", "builtin:tiny-llama", "--prompts", "6", "--max-new-tokens", "4", "--repeats", "1",
        "--backend-batch-size", "4"])
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == json.loads(json.dumps(summary))
    result = summary["results"]["builtin:tiny-llama"]
    assert set(result) >= {"prompt_tokens", "plain_generate_loop", "backend_same_batch", "backend"}
    for name in ("plain_generate_loop", "backend_same_batch", "backend"):
        assert 0 < result[name]["generated_tokens"] <= 6 * 4
        assert result[name]["tokens_per_s"] > 0
    # greedy on the same prompts: the backend's sorted batches give the plain loop's tokens on this fp32 model
    assert result["backend_same_batch"]["agreement"] == 1.0


@pytest.mark.slow
def test_real_shapes_path_on_cpu_with_one_layer(benchmark_script, monkeypatch):
    module = benchmark_script("eval_throughput")

    def short_prompts(n: int, vocab: int, seed: int) -> list[list[int]]:
        rng = random.Random(seed)
        return [[rng.randrange(1000, vocab - 1000) for _ in range(8 + 5 * i)] for i in range(n)]

    monkeypatch.setattr(module, "random_prompts", short_prompts)
    summary = module.main(["--shapes-on-cpu", "--layers", "1", "--prompts", "2", "--max-new-tokens", "2",
                           "--repeats", "1", "--threads", "2"])
    assert set(summary["results"]) == {"llama-3.1-8b", "qwen3-30b-a3b"}
    for result in summary["results"].values():
        assert result["layers"] == 1 and result["layers_note"] == "requested"
        assert result["plain_generate_loop"]["generated_tokens"] > 0
        assert result["backend"]["generated_tokens"] > 0  # 128 rows under a 131072-token budget: its GPU setting
        assert "vllm" not in result  # CUDA only
