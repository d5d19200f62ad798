"""Measured host-memory peak of each rank while a ZeRO-3 group loads an MoE student, against train.host_memory's plan.

    python benchmarks/train_load_memory.py                                  # a ~40M-parameter MoE, 2 CPU workers
    python benchmarks/train_load_memory.py --layers 2 --experts 4 --hidden 128 --moe-intermediate 128

Builds a random Qwen3-MoE checkpoint of the given shape (saved by transformers as the hub's models are: one tensor
per expert), then starts `--world` processes that form a gloo group and load it exactly as a training worker does
(train.core.load_base_for_training under DeepSpeed ZeRO-3, real DeepSpeed and transformers, CPU). In each worker, after
every import: resident set before the load, the peak mark reset (VmHWM, /proc/self/clear_refs), then the load, then
the peak. The measured figure per rank is peak minus before (what the load added); the planned one is
estimate_load_host_memory's model_gib (everything but the process runtime). glibc is told to return freed blocks
at once (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_) so that freed-but-kept heap is not counted.

Side by side, `--compare-plain` measures what a user without ZeRO-3 would write: one process calling
from_pretrained on the same folder (the whole model materialised once), against the plan's model_on_host figure.
`--stream` measures a leaner ZeRO-3 load a user could write from transformers 5.19's internals (one decoder layer
of the checkpoint at a time through its own ZeRO-3 loader; `_stream_zero3_load`), which the pinned libraries do not
offer as an option. The last stdout line is JSON.

Not guaranteed: a GPU node's figures (there the partitions live on the GPUs; the plan counts them so); page cache
is not in the resident peak of an anonymous copy but is in that of a memory-mapped read, so a transformers release
that memory-maps instead of copying would measure lower than the plan.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time

_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0", "OMP_NUM_THREADS": "1"}
GIB = 1024**3


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _peak_rss() -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def build_checkpoint(folder: str, *, layers: int, experts: int, hidden: int, moe_intermediate: int) -> str:
    """A random Qwen3-MoE in fp32, saved with save_pretrained (per-expert tensors, as on the hub)."""
    import torch
    from transformers import Qwen3MoeConfig, Qwen3MoeForCausalLM

    config = Qwen3MoeConfig(hidden_size=hidden, intermediate_size=2 * hidden, moe_intermediate_size=moe_intermediate,
                            num_hidden_layers=layers, num_attention_heads=4, num_key_value_heads=2,
                            head_dim=hidden // 4, num_experts=experts, num_experts_per_tok=2, decoder_sparse_step=1,
                            mlp_only_layers=[], vocab_size=1024, tie_word_embeddings=False, dtype="float32")
    torch.manual_seed(0)
    Qwen3MoeForCausalLM(config).save_pretrained(folder)
    return folder


def _student(folder: str, stage: int):
    from distill_ray.config import LoraConfig, StudentConfig

    return StudentConfig(model=folder, deepspeed_stage=stage, num_workers=2, dtype="float32",
                         lora=LoraConfig(r=8, alpha=16))


def _worker(args: argparse.Namespace) -> None:
    import torch
    import torch.distributed as dist

    from distill_ray.train.core import load_base_for_training
    from distill_ray.train.deepspeed_config import deepspeed_config

    torch.set_num_threads(1)
    zero3 = args.world > 0
    if zero3:
        import deepspeed

        dist.init_process_group("gloo", rank=args.rank, world_size=args.world,
                                init_method=f"tcp://127.0.0.1:{args.port}")
        deepspeed.init_distributed(dist_backend="gloo")
        config = deepspeed_config(3, 1, 1, args.world, bf16=False, on_gpu=False)
    student = _student(args.model, 3 if zero3 else 0)
    # Import what from_pretrained would import on first use, so that the measurement is the load alone.
    import transformers.models.qwen3_moe.modeling_qwen3_moe  # noqa: F401
    from transformers import AutoConfig

    AutoConfig.from_pretrained(args.model)
    if zero3:
        dist.barrier()
    before = _rss()
    _reset_peak_rss()
    start = time.perf_counter()
    if args.stream:
        model, keep = _stream_zero3_load(args.model, config)
    else:
        model, keep = load_base_for_training(student, torch.float32, "sdpa", config if zero3 else None)
    seconds = time.perf_counter() - start
    peak = _peak_rss()
    checksum = None
    if zero3:
        import deepspeed

        # the weights really arrived: the gathered norm of one expert tensor equals the checkpoint's
        experts = model.model.layers[0].mlp.experts.down_proj
        with deepspeed.zero.GatheredParameters([experts]):
            checksum = float(experts.float().norm())
        dist.barrier()
    print(json.dumps({"rank": args.rank, "before_gib": before / GIB, "peak_gib": peak / GIB,
                      "load_gib": (peak - before) / GIB, "load_s": seconds, "expert_norm": checksum}), flush=True)
    del model, keep
    if zero3:
        dist.destroy_process_group()


def _stream_zero3_load(folder: str, config: dict):
    """What a careful user could write instead (not the project's load path; it calls transformers 5.19 internals):
    build the model under zero.Init without initialising it, then hand transformers' own ZeRO-3 loader
    (integrations.deepspeed._load_state_dict_into_zero3_model, with the model's weight-conversion mapping) one
    decoder layer of the memory-mapped checkpoint at a time, so only one layer's fused experts exist at once."""
    import re

    import torch
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers import initialization as hf_init
    from transformers.conversion_mapping import get_model_conversion_mapping
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import _load_state_dict_into_zero3_model
    from transformers.modeling_utils import LoadStateDictConfig

    keep = HfDeepSpeedConfig(config)
    with hf_init.no_init_weights():
        model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(folder), dtype=torch.float32)
    load_config = LoadStateDictConfig(weight_mapping=get_model_conversion_mapping(model, None, None),
                                      dtype=torch.float32)
    expected, loaded = set(model.state_dict()), set()
    with safe_open(os.path.join(folder, "model.safetensors"), framework="pt") as handle:
        layers: dict[int, list[str]] = {}
        for key in handle.keys():
            match = re.match(r"model\.layers\.(\d+)\.", key)
            layers.setdefault(int(match.group(1)) if match else -1, []).append(key)
        for layer in sorted(layers):
            errors, missing = _load_state_dict_into_zero3_model(
                model, {key: handle.get_tensor(key) for key in layers[layer]}, load_config)
            if errors:
                raise RuntimeError(f"layer {layer}: {errors}")
            loaded |= expected - set(missing)
    if expected - loaded:
        raise RuntimeError(f"not loaded: {sorted(expected - loaded)[:5]}")
    return model, keep


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run_workers(model: str, world: int, stream: bool = False) -> list[dict]:
    port = _free_port()
    count = max(1, world)
    procs = [subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", "--rank", str(rank),
                               "--world", str(world), "--port", str(port), "--model", model,
                               *(["--stream"] if stream else [])],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, **_ENV, "RANK": str(rank), "LOCAL_RANK": str(rank),
                                   "WORLD_SIZE": str(count), "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port)})
             for rank in range(count)]
    results, failures = [], []
    for proc in procs:  # a failed rank leaves the others waiting in a collective: end them too
        try:
            out, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if proc.returncode:
            failures.append(f"worker exited {proc.returncode}: {err[-3000:]}")
            for other in procs:
                if other.poll() is None:
                    other.kill()
        else:
            results.append(json.loads(out.strip().splitlines()[-1]))
    if failures:
        raise RuntimeError(failures[0])
    return results


def _expected_norm(model: str) -> float:
    from safetensors import safe_open

    norm2 = 0.0
    with safe_open(os.path.join(model, "model.safetensors"), framework="pt") as handle:
        for key in handle.keys():
            if key.startswith("model.layers.0.mlp.experts.") and key.endswith("down_proj.weight"):
                norm2 += float(handle.get_tensor(key).float().pow(2).sum())
    return norm2 ** 0.5


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", type=int, default=6)
    parser.add_argument("--experts", type=int, default=16)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--moe-intermediate", type=int, default=384)
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--compare-plain", action="store_true")
    parser.add_argument("--stream", action="store_true", help="also measure a per-layer streaming ZeRO-3 load")
    parser.add_argument("--model", help="an existing checkpoint folder (with --worker, or instead of building one)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker(args)
        return {}

    from distill_ray.train.host_memory import estimate_load_host_memory

    with tempfile.TemporaryDirectory(prefix="load-memory-") as tmp:
        model = args.model or build_checkpoint(tmp, layers=args.layers, experts=args.experts, hidden=args.hidden,
                                               moe_intermediate=args.moe_intermediate)
        ranks = _run_workers(model, args.world)
        plan = estimate_load_host_memory(_student(model, 3), device="cpu", world=args.world)
        summary: dict = {
            "benchmark": "train_load_memory", "world": args.world, "checkpoint_mib": sum(
                os.path.getsize(os.path.join(model, f)) for f in os.listdir(model) if f.endswith(".safetensors"))
            / 2**20, "planned_gib": plan["model_gib"], "plan": plan["components"],
            "measured_gib_per_rank": [r["load_gib"] for r in ranks], "load_s_per_rank": [r["load_s"] for r in ranks],
            "expert_norm_loaded": ranks[0]["expert_norm"], "expert_norm_checkpoint": _expected_norm(model),
        }
        summary["ratio_planned_to_measured"] = [plan["model_gib"] / r["load_gib"] for r in ranks]
        if args.stream:
            streamed = _run_workers(model, args.world, stream=True)
            summary.update(streamed_gib_per_rank=[r["load_gib"] for r in streamed],
                           streamed_load_s_per_rank=[r["load_s"] for r in streamed],
                           streamed_expert_norm=streamed[0]["expert_norm"])
        if args.compare_plain:
            plain = _run_workers(model, 0)[0]
            plain_plan = estimate_load_host_memory(_student(model, 0), device="cpu", world=1)
            summary.update(plain_from_pretrained_gib=plain["load_gib"], plain_planned_gib=plain_plan["model_gib"])
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
