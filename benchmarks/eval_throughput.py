"""Evaluation throughput: generated tokens/s of each backend against a plain `model.generate()` loop, same prompts.

    python benchmarks/eval_throughput.py                       # CPU: both tiny built-in students, ~3 minutes
    python benchmarks/eval_throughput.py --prompts 96 --max-new-tokens 32 --repeats 1     # quicker
    python benchmarks/eval_throughput.py --gpu                 # CUDA: Llama-3.1-8B and Qwen3-30B-A3B shapes
    python benchmarks/eval_throughput.py --shapes-on-cpu --layers 1 --prompts 3 --max-new-tokens 3 --repeats 1
                                                               # the --gpu path on the CPU, 1 layer: a dry run

The baseline is what quick evaluation scripts do: static batches of `--batch-size` prompts in the order given, left
padded, `model.generate()` greedy, every row decoded until the batch's last row ends. Against it, on the same prompts
and the same model object:
- `backend_same_batch`: TransformersBackend with the baseline's row cap (length-sorted batches, rows leave at their
  stop token), to separate what sorting buys from what bigger batches buy;
- `backend`: TransformersBackend with `--backend-batch-size` rows under a `--max-batch-tokens` budget (run only when
  that differs from the baseline's batch: by default on GPU, where bigger batches fill the device);
- `continuous_batching`: transformers' own `generate_batch` (paged KV cache), when `--cb` is given;
- `vllm` (GPU only, when importable): the same model shape with dummy weights, prompts as token ids.
Only real tokens count: a row's tokens up to and including its stop token, never the padding after it. `agreement`
is the fraction of responses token-identical to the baseline's (both greedy; batches differ, so see the backend's
module note on what is and is not guaranteed).

CPU prompts are user messages from the built-in problem families: two thirds alone (~40 tokens with the template),
one third after one to three verbose teacher traces (~200-800 tokens), shuffled, so padding matters. The built-in
students are random networks that never emit a stop token, so every row runs to --max-new-tokens and the early-exit
part of the backend gains nothing here. With --gpu the models are real-size architectures (published config
dimensions, `distill_ray.train.reference_shapes`, the same as the train benchmark's) with random bf16 weights,
nothing downloaded, and random token-id prompts with the same kind of length mix; `--layers auto` keeps every layer
unless their weights would take over 60% of the card (the 30B MoE on an H100: 39 of 48), and says so in the JSON.
Timings on a shared machine move with other load: rerun, and compare only figures from one run.
The last stdout line is a JSON object with every figure.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import statistics
import sys
import time
from typing import Any

import torch

from distill_ray.evaluate.backends import TransformersBackend


def cpu_messages(n: int, seed: int) -> list[str]:
    from distill_ray.builtin_problems import mixed_length_messages

    return mixed_length_messages(n, seed, max_traces=3)


def random_prompts(n: int, vocab: int, seed: int) -> list[list[int]]:
    """Token-id prompts with a MATH/MBPP-like mix: two thirds 40-160 tokens, one third 400-1500 (long contexts)."""
    rng = random.Random(seed)
    lengths = [rng.randint(40, 160) if i % 3 else rng.randint(400, 1500) for i in range(n)]
    rng.shuffle(lengths)
    return [[rng.randrange(1000, vocab - 1000) for _ in range(length)] for length in lengths]


def cut(tokens: list[int], stop_ids: list[int]) -> list[int]:
    for j, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:j + 1]
    return tokens


def plain_loop(model: Any, prompts: list[list[int]], *, batch_size: int, max_new_tokens: int, stop_ids: list[int],
               pad_id: int, device: str) -> list[list[int]]:
    """The baseline: static batches in prompt order, left padding, model.generate, greedy."""
    outputs: list[list[int]] = []
    for start in range(0, len(prompts), batch_size):
        batch = prompts[start:start + batch_size]
        longest = max(len(p) for p in batch)
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        for row, p in enumerate(batch):
            ids[row, longest - len(p):] = torch.tensor(p)
            mask[row, longest - len(p):] = 1
        with torch.inference_mode():
            out = model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                 max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                                 pad_token_id=pad_id)
        outputs.extend(cut(row[longest:].tolist(), stop_ids) for row in out)
    return outputs


def continuous_batching(model: Any, prompts: list[list[int]], *, max_new_tokens: int, stop_ids: list[int],
                        pad_id: int, device: str) -> list[list[int]]:
    """transformers' generate_batch (paged KV cache). On CPU the cache is sized explicitly: left to itself it sizes
    for a GPU's memory and spends most of a minute allocating."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                              pad_token_id=pad_id)
    cb_config = None
    if not device.startswith("cuda"):
        page = 32
        blocks = sum(len(p) + max_new_tokens for p in prompts) // page + len(prompts) + 8
        cb_config = ContinuousBatchingConfig(page_size=page, num_blocks=blocks, max_batch_tokens=1024)
    results = model.generate_batch(prompts, generation_config=config, continuous_batching_config=cb_config,
                                   max_new_tokens=max_new_tokens, warmup=device.startswith("cuda"))
    return [cut(list(r.generated_tokens), stop_ids) for r in results.values()]


def timed_round_robin(methods: dict[str, Any], repeats: int, device: str) -> dict[str, tuple[list[list[int]], float]]:
    """{name: (outputs, median seconds)}; the methods take turns within each repeat, so a change in the machine's
    load during the run (this is a shared machine) hits every method alike instead of whichever ran then."""
    seconds: dict[str, list[float]] = {name: [] for name in methods}
    outputs: dict[str, list[list[int]]] = {}
    for _ in range(repeats):
        for name, fn in methods.items():
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            start = time.perf_counter()
            outputs[name] = fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds[name].append(time.perf_counter() - start)
    return {name: (outputs[name], statistics.median(seconds[name])) for name in methods}


def compare(model: Any, prompts: list[list[int]], *, stop_ids: list[int], pad_id: int, device: str,
            args: argparse.Namespace) -> dict[str, Any]:
    """Every method on the same model and prompts; tokens/s counts real tokens only."""
    common = dict(max_new_tokens=args.max_new_tokens, stop_ids=stop_ids, pad_id=pad_id, device=device)
    same = TransformersBackend.from_model(model, pad_id=pad_id, stop_ids=stop_ids, batch_size=args.batch_size,
                                          device=device)
    big = TransformersBackend.from_model(model, pad_id=pad_id, stop_ids=stop_ids, batch_size=args.backend_batch_size,
                                         max_batch_tokens=args.max_batch_tokens, device=device)
    methods = {
        "plain_generate_loop": lambda: plain_loop(model, prompts, batch_size=args.batch_size, **common),
        "backend_same_batch": lambda: same.generate_ids(prompts, max_new_tokens=args.max_new_tokens),
    }
    if (args.backend_batch_size, args.max_batch_tokens) != (args.batch_size, None):
        methods["backend"] = lambda: big.generate_ids(prompts, max_new_tokens=args.max_new_tokens)
    if args.cb:
        methods["continuous_batching"] = lambda: continuous_batching(model, prompts, **common)
    # Warm-up (allocator, kernels, lazy imports) on a few prompts so the first timed method is not penalised.
    plain_loop(model, prompts[:4], batch_size=4, **{**common, "max_new_tokens": 4})
    results: dict[str, Any] = {}
    timings = timed_round_robin(methods, args.repeats, device)
    baseline = timings["plain_generate_loop"][0]
    for name, (outputs, seconds) in timings.items():
        tokens = sum(len(o) for o in outputs)
        results[name] = {
            "seconds": round(seconds, 3), "generated_tokens": tokens, "tokens_per_s": round(tokens / seconds, 1),
            "agreement": round(sum(a == b for a, b in zip(outputs, baseline, strict=True)) / len(prompts), 4),
        }
        print(f"  {name:22s} {results[name]}", file=sys.stderr)
    plain = results["plain_generate_loop"]["tokens_per_s"]
    for name in results:
        results[name]["speedup_vs_plain"] = round(results[name]["tokens_per_s"] / plain, 2)
    return results


def run_cpu(args: argparse.Namespace) -> dict[str, Any]:
    from distill_ray.config import StudentConfig

    messages = cpu_messages(args.prompts, args.seed)
    report: dict[str, Any] = {}
    for name in args.students.split(","):
        backend = TransformersBackend(StudentConfig(model=name), device="cpu")
        prompts = backend.encode(messages)
        lengths = sorted(len(p) for p in prompts)
        print(f"{name}: {len(prompts)} prompts, tokens min/median/max {lengths[0]}/{lengths[len(lengths) // 2]}"
              f"/{lengths[-1]}", file=sys.stderr)
        report[name] = {"prompt_tokens": {"min": lengths[0], "median": lengths[len(lengths) // 2],
                                          "max": lengths[-1], "total": sum(lengths)},
                        **compare(backend.model, prompts, stop_ids=backend.stop_ids,
                                  pad_id=backend.tokenizer.pad_token_id, device="cpu", args=args)}
    return report


def run_real_shapes(args: argparse.Namespace, device: str) -> dict[str, Any]:
    """The seed's students as random-weight models of their published shapes (bf16 on CUDA, fp32 on the CPU)."""
    from distill_ray.train.reference_shapes import build_reference_model, choose_layers

    report: dict[str, Any] = {}
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    for name in args.gpu_models.split(","):
        layers, why = choose_layers(name, args.layers, device)
        model = build_reference_model(name, device=device, dtype=dtype, layers=layers).eval()
        config = model.config
        prompts = random_prompts(args.prompts, config.vocab_size, args.seed)
        stop_ids, pad_id = [config.eos_token_id], config.pad_token_id
        print(f"{name}: {sum(p.numel() for p in model.parameters()) / 1e9:.1f}B parameters, {layers} layers "
              f"({why})", file=sys.stderr)
        report[name] = {"layers": layers, "layers_note": why,
                        **compare(model, prompts, stop_ids=stop_ids, pad_id=pad_id, device=device, args=args)}
        del model
        gc.collect()
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
            report[name]["vllm"] = run_vllm(config, prompts, args)
    return report


def run_vllm(config: Any, prompts: list[list[int]], args: argparse.Namespace) -> dict[str, Any]:
    """vLLM with dummy (random) weights from the same config; 'skipped' when vLLM is not installed."""
    import tempfile

    try:
        from vllm import LLM, SamplingParams
    except ImportError:
        return {"skipped": "vllm not importable"}
    with tempfile.TemporaryDirectory() as folder:
        config.save_pretrained(folder)
        llm = LLM(model=folder, load_format="dummy", skip_tokenizer_init=True, dtype="bfloat16",
                  gpu_memory_utilization=0.85, max_model_len=max(len(p) for p in prompts) + args.max_new_tokens)
        params = SamplingParams(temperature=0.0, max_tokens=args.max_new_tokens, detokenize=False)
        token_prompts = [{"prompt_token_ids": p} for p in prompts]
        llm.generate(token_prompts[:4], params, use_tqdm=False)  # warm-up
        start = time.perf_counter()
        results = llm.generate(token_prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        tokens = sum(len(r.outputs[0].token_ids) for r in results)
        del llm
        gc.collect()
        torch.cuda.empty_cache()
    return {"seconds": round(seconds, 3), "generated_tokens": tokens, "tokens_per_s": round(tokens / seconds, 1)}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="real-size random-weight models on CUDA")
    parser.add_argument("--prompts", type=int, default=None, help="default 192 on CPU, 128 with --gpu")
    parser.add_argument("--max-new-tokens", type=int, default=None, help="default 64 on CPU, 256 with --gpu")
    parser.add_argument("--batch-size", type=int, default=32, help="the plain loop's static batch size")
    parser.add_argument("--backend-batch-size", type=int, default=None,
                        help="the backend's row cap (default 32 on CPU, 128 with --gpu)")
    parser.add_argument("--max-batch-tokens", type=int, default=None,
                        help="the backend's padded-token budget (default none on CPU, 131072 with --gpu)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per method (median reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--students", default="builtin:tiny-llama,builtin:tiny-qwen3-moe")
    parser.add_argument("--gpu-models", default="llama-3.1-8b,qwen3-30b-a3b")
    parser.add_argument("--cb", action="store_true", help="also time transformers' generate_batch")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", default="auto",
                        help="decoder layers of the real shapes: a number, or auto (all that fit the card)")
    parser.add_argument("--shapes-on-cpu", action="store_true",
                        help="the --gpu path (real shapes) on the CPU in fp32: with --layers 1 and a few prompts, "
                             "a dry run of the GPU command, not a timing")
    args = parser.parse_args(argv)
    if args.gpu and not torch.cuda.is_available():
        parser.error("--gpu needs a CUDA device")
    if args.gpu and args.shapes_on_cpu:
        parser.error("--gpu and --shapes-on-cpu exclude each other")
    real_shapes = args.gpu or args.shapes_on_cpu  # the dry run takes the GPU command's settings
    args.prompts = args.prompts or (128 if real_shapes else 192)
    args.max_new_tokens = args.max_new_tokens or (256 if real_shapes else 64)
    # On the 2-core CPU bigger batches of the tiny students were slower, not faster (tiny-qwen3-moe: 2445 tokens/s
    # at 32 rows, 791 at 128), so the CPU default is the config's 32 rows. On a GPU a bigger batch is what fills the
    # device; 131072 padded tokens keep the KV cache near 17 GB for the 8B and 13 GB for the 30B-A3B (H100-safe).
    args.backend_batch_size = args.backend_batch_size or (128 if real_shapes else 32)
    args.max_batch_tokens = args.max_batch_tokens or (131_072 if real_shapes else None)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    device_name = torch.cuda.get_device_name(0) if args.gpu else f"{platform.processor() or platform.machine()} CPU"
    if args.gpu or args.shapes_on_cpu:
        results = run_real_shapes(args, "cuda" if args.gpu else "cpu")
    else:
        results = run_cpu(args)
    summary = {
        "benchmark": "eval_throughput", "device": device_name, "torch_threads": torch.get_num_threads(),
        "prompts": args.prompts, "max_new_tokens": args.max_new_tokens, "plain_batch_size": args.batch_size,
        "backend_batch_size": args.backend_batch_size, "max_batch_tokens": args.max_batch_tokens,
        "repeats": args.repeats, "timing": "median of round-robin repeats", "results": results,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
