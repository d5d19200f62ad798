"""The host-memory plan: calibrated against a measured ZeRO-3 load (2 gloo workers, real DeepSpeed and transformers,
an MoE checkpoint saved per expert as the hub's are), and on the seed's real shapes it says what each node holds."""

from __future__ import annotations

import importlib.util
import os

import pytest

from distill_ray.config import LoraConfig, StudentConfig
from distill_ray.train.host_memory import estimate_load_host_memory, estimate_training_host_memory

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _benchmark():
    spec = importlib.util.spec_from_file_location("train_load_memory",
                                                  os.path.join(ROOT, "benchmarks", "train_load_memory.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_planned_load_peak_matches_a_measured_zero3_load(tmp_path, monkeypatch):
    """Each rank's measured host peak during the load (VmHWM reset just before it, minus the resident set before)
    against the plan's model_gib. The checkpoint (~120 MB in fp32: 6 layers of 16 experts) is large enough that the
    load, not allocator noise, is what is measured; only the two workers start processes."""
    monkeypatch.setenv("PYTHONPATH", ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    bench = _benchmark()
    model = bench.build_checkpoint(str(tmp_path / "moe"), layers=6, experts=16, hidden=256, moe_intermediate=384)
    ranks = bench._run_workers(model, 2)
    plan = estimate_load_host_memory(bench._student(model, 3), device="cpu", world=2)
    assert plan["components"]["fused_experts_gib"] > 0.5 * plan["components"]["checkpoint_mapped_gib"]
    assert ranks[0]["expert_norm"] == pytest.approx(bench._expected_norm(model), rel=1e-4)  # the weights arrived
    for rank in ranks:
        # the plan leaves out ~14 MiB of fixed load machinery per rank (a 2-layer MoE measures 20 MiB for 6.6 MiB
        # planned), which is ~5% of this load and nothing at 30B
        ratio = plan["model_gib"] / rank["load_gib"]
        assert 0.88 <= ratio <= 1.3, (ratio, rank, plan)


def test_seed_shapes_at_load_and_while_training():
    qwen = StudentConfig(model="Qwen/Qwen3-30B-A3B-Base", deepspeed_stage=3, num_workers=8,
                         lora=LoraConfig(r=32, alpha=64, expert_lora=True))
    llama = StudentConfig(model="meta-llama/Llama-3.1-8B-Instruct", deepspeed_stage=2, num_workers=4,
                          lora=LoraConfig(r=32, alpha=64))
    q = estimate_load_host_memory(qwen)
    # every ZeRO-3 rank reads the whole bf16 checkpoint and builds the fused experts (transformers 5.19)
    assert 56 < q["components"]["checkpoint_mapped_gib"] < 58 and q["shared_per_node_gib"] == pytest.approx(
        q["components"]["checkpoint_mapped_gib"])
    assert 53 < q["components"]["fused_experts_gib"] < 55
    assert q["components"]["partition_gib"] == 0.0  # on GPUs the partitions live on the devices
    lo = estimate_load_host_memory(llama)
    assert set(lo["components"]) == {"checkpoint_mapped_gib", "model_on_host_gib", "runtime_gib"}
    assert 14.5 < lo["components"]["model_on_host_gib"] < 15.5
    assert estimate_training_host_memory(qwen)["total_gib"] < 15


def test_dry_run_prints_host_memory_per_node_type_and_refuses_what_cannot_load(capsys, tmp_path):
    """seed.yaml plans on every node type of cluster.yaml; a Mixtral-8x22B-shaped student (a local config.json that
    names its experts num_local_experts) on 16 H100 workers fits the GPUs under ZeRO-3, but 8 ranks each building
    ~252 GiB of fused experts exceed a p5.48xlarge's 2048 GiB."""
    import json

    from distill_ray.cli import main

    seed, cluster = os.path.join(ROOT, "sweeps", "seed.yaml"), os.path.join(ROOT, "cluster.yaml")
    assert main(["sweep", seed, "--dry-run", "--cluster", cluster]) == 0
    captured = capsys.readouterr()
    nodes = {n["node_type"]: n for n in json.loads(captured.out)["host_memory"]}
    assert set(nodes) == {"gpu-h100x8", "gpu-l40sx4-spot", "head"}
    assert nodes["gpu-h100x8"]["ram_gib"] == 2048 and nodes["gpu-l40sx4-spot"]["ram_gib"] == 384
    assert nodes["head"]["ram_gib"] == 128
    # 8 ranks x (54 GiB of fused experts + runtime) + one mapped 57 GiB checkpoint
    assert 450 < nodes["gpu-h100x8"]["load_gib"] < 600
    assert "estimated host memory per node" in captured.err
    config = {"model_type": "mixtral", "hidden_size": 6144, "intermediate_size": 16384, "num_hidden_layers": 56,
              "num_attention_heads": 48, "num_key_value_heads": 8, "num_local_experts": 8, "num_experts_per_tok": 2,
              "vocab_size": 32768, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
    (tmp_path / "config.json").write_text(json.dumps(config))
    code = main(["sweep", seed, "--dry-run", "--cluster", cluster, f"students.qwen3-30b-a3b.model={tmp_path}",
                 "students.qwen3-30b-a3b.num_workers=16",
                 # its vLLM engine (~263 GiB of bf16 weights) on a whole H100 node, so only host memory can refuse
                 "students.qwen3-30b-a3b.evaluation={actors: 1, gpus: 8, tensor_parallel: 8, cpus: 8, "
                 "resources: {node_h100: 8}}"])
    err = capsys.readouterr().err
    assert code == 2
    assert "student qwen3-30b-a3b" in err and "at model load on node type gpu-h100x8" in err
    assert "p5.48xlarge" in err and "fits on no node type" not in err  # the GPUs would hold it
