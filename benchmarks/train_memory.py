"""Measured peak memory of one training step of a student against `estimate_train_memory`'s figure for it.

    python benchmarks/train_memory.py --student builtin:tiny-llama --rows 64 --length 256            # CPU
    python benchmarks/train_memory.py --student builtin:tiny-qwen3-moe --checkpointing --expert-lora
    python benchmarks/train_memory.py --device cuda --student builtin:tiny-llama --rows 8 --length 4096

One forward + backward + optimiser step of `--rows` rows of `--length` random tokens (the first eighth of each row
masked as prompt), after a one-row warm-up. The measured figure is the step's peak minus the memory held just
before it (the dynamic part: activations, logits chunk, gradients), compared with the estimate's activations +
logits_chunk components. CPU: peak resident set size (VmHWM, reset just before the step) minus the resident set
before the step, with glibc told to return freed blocks at once (MALLOC_MMAP_THRESHOLD_, MALLOC_TRIM_THRESHOLD_;
the script re-executes itself with them), else freed-but-kept heap would be counted. CUDA:
torch.cuda.max_memory_allocated minus memory_allocated before the step. The last stdout line is JSON.

Not guaranteed: on CPU, SDPA's math path materialises attention probabilities (rows x heads x length^2), which the
estimate (flash attention assumed) does not count: keep --length short on CPU.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

_ENV = {"MALLOC_MMAP_THRESHOLD_": "65536", "MALLOC_TRIM_THRESHOLD_": "0"}


def _rss() -> int:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _reset_peak_rss() -> None:
    """Start the peak-RSS mark afresh (Linux >= 4.0). ru_maxrss cannot be used: it never falls, and a process started
    by fork + exec (as a test's subprocess) inherits its parent's resident size at the fork as its starting maximum."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")


def _peak_rss() -> int:
    """This process's peak resident set size since the last _reset_peak_rss (VmHWM)."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--student", default="builtin:tiny-llama")
    parser.add_argument("--rows", type=int, default=64)
    parser.add_argument("--length", type=int, default=256)
    parser.add_argument("--checkpointing", action="store_true")
    parser.add_argument("--expert-lora", action="store_true")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if not args.device.startswith("cuda") and any(os.environ.get(k) != v for k, v in _ENV.items()):
        os.execve(sys.executable, [sys.executable, os.path.abspath(__file__), *(argv or sys.argv[1:])],
                  {**os.environ, **_ENV})

    import torch

    from distill_ray.config import LoraConfig, StudentConfig, TrainingConfig
    from distill_ray.train.core import Context, setup_model
    from distill_ray.train.memory import estimate_train_memory

    torch.set_num_threads(1)
    moe = "moe" in args.student
    targets = ["q_proj", "k_proj", "v_proj", "o_proj"] + ([] if moe else ["gate_proj", "up_proj", "down_proj"])
    lora = LoraConfig(r=args.rank, alpha=2 * args.rank, target_modules=targets, expert_lora=args.expert_lora)
    student = StudentConfig(model=args.student, lora=lora, gradient_checkpointing=args.checkpointing)
    training = TrainingConfig(samples=args.rows, global_batch=args.rows, micro_batch=args.rows,
                              max_length=args.length, packing=False)
    ctx = Context(0, 1, args.device, None, lambda *a: None, lambda m: None, "/tmp")
    setup = setup_model(student, training, ctx, 1)
    setup.engine.train()
    vocab = setup.peft_model.get_base_model().config.vocab_size
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(10, vocab - 10, (args.rows, args.length), generator=gen)
    pos = torch.arange(args.length).unsqueeze(0).expand(args.rows, -1).contiguous()
    targets_t = torch.roll(ids, -1, 1)
    targets_t[:, : args.length // 8] = -100
    ids, pos, targets_t = ids.to(args.device), pos.to(args.device), targets_t.to(args.device)
    setup.engine(ids[:1, :16], pos[:1, :16], targets_t[:1, :16]).backward()  # warm-up: kernels, allocator
    setup.optimizer.step()
    setup.optimizer.zero_grad(set_to_none=True)
    cuda = args.device.startswith("cuda")
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        import gc

        gc.collect()
        before = _rss()
        _reset_peak_rss()
    setup.engine(ids, pos, targets_t).backward()
    setup.optimizer.step()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    else:
        peak = _peak_rss()
    estimate = estimate_train_memory(student, training, device=args.device)
    c = estimate["components"]
    summary = {
        "benchmark": "train_memory", "student": args.student, "device": args.device, "rows": args.rows,
        "length": args.length, "checkpointing": args.checkpointing, "expert_lora": args.expert_lora,
        "trainable_parameters": setup.trainable, "estimated_trainable_parameters": estimate["trainable_parameters"],
        "measured_dynamic_gib": (peak - before) / 2**30,
        "estimated_dynamic_gib": c["activations_gib"] + c["logits_chunk_gib"],
        "estimate": estimate,
    }
    summary["ratio"] = summary["estimated_dynamic_gib"] / summary["measured_dynamic_gib"]
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
