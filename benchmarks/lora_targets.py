"""What expert LoRA costs on the tiny MoE: attention-only LoRA against attention + the fused experts (seed.yaml's
choice for Qwen3-30B-A3B), trainable parameters, step time of the core path and the step's dynamic memory.

    python benchmarks/lora_targets.py                 # CPU, the tiny Qwen3-MoE (4 experts, 2 active), rank 32

Step time: `train_throughput.run_core` (packed rows, chunked loss) on the trace-length mix scaled to max_length 256,
8 examples per step, 2 warm-up and 6 timed steps, one thread, both configurations alternating on the same examples
(so machine load hits both alike). Memory: benchmarks/train_memory.py's measured dynamic peak (48 rows x 256
tokens) in a fresh process per configuration. The real shape's trainable counts are computed (memory.py), not
measured. The last stdout line is JSON.

Not guaranteed: tiny-model ratios are not the real model's (4 experts of width 128 against 128 of width 768): on the
real shape the experts hold ~97% of the weights, and PEFT forms each expert tensor's full delta per forward.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def main(argv: list[str] | None = None) -> dict:
    import torch

    sys.path.insert(0, HERE)
    from train_throughput import make_examples, run_core, trace_lengths

    from distill_ray.config import LoraConfig, StudentConfig, TrainingConfig
    from distill_ray.train.core import apply_lora
    from distill_ray.train.memory import estimate_train_memory
    from distill_ray.train.models import load_base_model

    torch.set_num_threads(1)
    attention = ["q_proj", "k_proj", "v_proj", "o_proj"]
    configs = {"attention": LoraConfig(r=32, alpha=64, target_modules=attention),
               "attention+experts": LoraConfig(r=32, alpha=64, target_modules=attention, expert_lora=True)}
    examples = None
    models = {}
    for name, lora in configs.items():
        base = load_base_model(StudentConfig(model="builtin:tiny-qwen3-moe"))
        for p in base.parameters():
            p.requires_grad_(False)
        models[name] = apply_lora(base, lora, seed=0)
        if examples is None:
            examples = make_examples(trace_lengths(64, 256, 0, 0.3), base.config.vocab_size, 0)
    times: dict[str, list[float]] = {name: [] for name in configs}
    for _ in range(3):  # alternate, so that load on a shared machine falls on both alike
        for name, (peft_model, _) in models.items():
            peft_model.train()
            times[name].append(run_core(peft_model, examples, 1024, "cpu", 2, 1, 8)["tokens_per_s"])
    results: dict[str, dict] = {}
    for name, lora in configs.items():
        flags = ["--expert-lora"] if lora.expert_lora else []
        out = subprocess.run([sys.executable, os.path.join(HERE, "train_memory.py"), "--student",
                              "builtin:tiny-qwen3-moe", "--rank", "32", "--rows", "48", "--length", "256", *flags],
                             capture_output=True, text=True, check=True)
        memory = json.loads(out.stdout.strip().splitlines()[-1])
        real = estimate_train_memory(
            StudentConfig(model="Qwen/Qwen3-30B-A3B-Base", lora=lora, deepspeed_stage=3, num_workers=8,
                          gradient_checkpointing=True),
            TrainingConfig(micro_batch=16, micro_batch_tokens=16384))
        results[name] = {
            "trainable_parameters": models[name][1], "tokens_per_s": sorted(times[name])[1],  # median of 3
            "tokens_per_s_runs": times[name], "dynamic_memory_gib": memory["measured_dynamic_gib"],
            "real_shape_trainable_parameters": real["trainable_parameters"],
            "real_shape_estimated_gib_per_gpu": real["total_gib"],
        }
    a, b = results["attention"], results["attention+experts"]
    summary = {"benchmark": "lora_targets", "model": "builtin:tiny-qwen3-moe", "rank": 32, "results": results,
               "experts_step_time_ratio": a["tokens_per_s"] / b["tokens_per_s"],
               "experts_memory_ratio": b["dynamic_memory_gib"] / a["dynamic_memory_gib"]}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
