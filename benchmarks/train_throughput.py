"""Training throughput of the train stage's core against a plain padded transformers + PEFT loop.

    python benchmarks/train_throughput.py                       # on a GPU: Llama-3.1-8B and Qwen3-30B-A3B shapes
    python benchmarks/train_throughput.py --model llama-3.1-8b --token-budget 8192 --steps 10
    python benchmarks/train_throughput.py --tiny                # CPU (automatic without CUDA): the tiny students
    python benchmarks/train_throughput.py --model qwen3-30b-a3b --layers 12     # like the issue's reference loop
    python benchmarks/train_throughput.py --device cpu --layers 1 --steps 1 --warmup 0 --batch 2 --examples 2 \
        --max-length 128 --token-budget 256 --plain-batch 2      # the real shapes, 1 layer, on CPU: a dry run

Both paths train the same LoRA (rank 32: every linear layer of Llama; attention + the fused experts of the MoE, as
seed.yaml, or --moe-lora attention) on the same random-weight model built from the published configuration (nothing
is downloaded), with the same activation-checkpointing setting (--checkpointing on|off|both; seed.yaml: on), on the
same examples drawn from a trace-length mix like the seed's: responses like Sonnet's (~700 tokens) and like R1's
(~3K tokens, some cut at max_length 4096), behind ~100-300-token prompts. Defaults on a GPU are seed.yaml's: steps
of 50 examples, max_length 4096, rows of at most 16 examples and 16384 tokens.
- "core": the train stage's path: sequences packed (first-fit decreasing) into rows of up to --token-budget tokens
  with position ids restarting per example (varlen flash attention, or SDPA's block-diagonal mask), logits only at
  response positions, in chunks of --loss-chunk-tokens rows.
- "plain": what a careful user writes with transformers + PEFT: each step's examples grouped by length (longest
  first, like `group_by_length`) into batches of --plain-batch padded to their longest, the model's own loss over
  full logits (prompt masked by labels = -100).
Tokens/s counts real (non-padding) tokens of both prompt and response. MFU counts the model FLOPs each path actually
needs for the tokens it computes: MFU = [4 x N_body x T + 4 x N_head x T_head] / seconds / peak, with 4N = forward
(2N) + input-gradient backward (2N) (frozen weights get no weight gradient; LoRA's own FLOPs and attention's are not
counted), T the real tokens, N_head the LM head, T_head the positions whose logits the path computes (the core:
response tokens; the plain loop: every real token). HFU adds the recompute of activation checkpointing (2 x N_body x
T). N_body counts the weights that do matmuls per token (embedding lookup and LM head excluded; for the MoE, the
router, attention and the 8 of 128 experts a token visits). Peak: 989 TFLOP/s dense bf16 (H100 SXM, H200).

Shapes come from `distill_ray.train.reference_shapes` (the eval benchmark builds the same ones). `--layers auto`
keeps every decoder layer unless their bf16 weights would take over 60% of the card: the 30B MoE's 61 GB fit an
H200 whole, an H100 (about 79 GiB) gets 39 of its 48 layers; the JSON says how many were used and why. Both paths run
on the same model, so the comparison holds whatever the layer count.

The last stdout line is a JSON object ("runs" holds every checkpointing setting; "core", "plain" and "speedup" are
the first one's). Not guaranteed: numbers on a shared or throttled GPU; the plain loop, with its padded full-logit
batches, may run out of memory where the core does not, which the JSON records. In --tiny mode MFU is reported
against --peak-tflops (default: none, so null).
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import random
import sys
import time
from typing import Any

import torch

PEAK_BF16_TFLOPS = 989.0
ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


def trace_lengths(n: int, max_length: int, seed: int, r1_share: float) -> list[tuple[int, int]]:
    """(prompt, response) token lengths: Sonnet-like responses (lognormal, mean ~700) and R1-like (mean ~3K), for
    max_length 4096; a smaller max_length scales every length by max_length / 4096 (the tiny mode)."""
    rng = random.Random(seed)
    scale = min(1.0, max_length / 4096)
    out = []
    for _ in range(n):
        prompt = int(rng.randint(100, 300) * scale)
        if rng.random() < r1_share:
            response = int(rng.lognormvariate(math.log(2700), 0.45) * scale)
        else:
            response = int(rng.lognormvariate(math.log(620), 0.5) * scale)
        response = max(4, response)
        out.append((prompt, min(response, max_length - prompt)))
    return out


def make_examples(lengths, vocab: int, seed: int):
    from distill_ray.train.data import IGNORE, EncodedExample

    gen = torch.Generator().manual_seed(seed)
    examples = []
    for i, (p, r) in enumerate(lengths):
        ids = torch.randint(10, vocab - 10, (p + r,), generator=gen).tolist()
        targets = [IGNORE] * (p + r)
        for t in range(p - 1, p + r - 1):
            targets[t] = ids[t + 1]
        examples.append(EncodedExample(str(i), tuple(ids), tuple(targets), 0))
    return examples


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed_steps(peft_model, examples, device: str, steps: int, warmup: int, batch: int, prepare, backward) -> dict:
    """{"tokens_per_s", "seconds", "tokens", "loss_tokens"} over `steps` optimiser steps of `batch` examples after
    `warmup` untimed ones (tokens: real, non-padding ones). `prepare(chunk)` builds a step's batches outside the
    timing (a data loader's work, ahead of the GPU, for both paths alike); `backward(batches, chunk)` runs the step's
    forwards and backwards."""
    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-5)
    tokens = loss_tokens = 0
    elapsed = 0.0
    for step in range(warmup + steps):
        chunk = examples[(step * batch) % len(examples):][:batch]
        batches = prepare(chunk)
        _sync(device)
        start = time.perf_counter()
        backward(batches, chunk)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        _sync(device)
        if step >= warmup:
            elapsed += time.perf_counter() - start
            tokens += sum(len(e.input_ids) for e in chunk)
            loss_tokens += sum(e.loss_tokens for e in chunk)
    return {"tokens_per_s": tokens / elapsed, "seconds": elapsed, "tokens": tokens, "loss_tokens": loss_tokens}


def run_core(peft_model, examples, token_budget: int, device: str, steps: int, warmup: int, batch: int,
             micro_batch: int = 16, chunk_tokens: int = 4096):
    """The train stage's step: rows packed up to the token budget (first-fit decreasing), per-token loss over the
    step, logits only where there is a target, in chunks of `chunk_tokens` rows."""
    from distill_ray.train.core import CausalLMLoss
    from distill_ray.train.data import make_micro_batches

    loss_module = CausalLMLoss(peft_model, chunk_tokens=chunk_tokens)

    def prepare(chunk):
        return make_micro_batches(chunk, micro_batch=micro_batch, packing=True, pad_id=0, max_tokens=token_budget)

    def backward(micro, chunk):
        norm = sum(e.loss_tokens for e in chunk)
        for mb in micro:
            mb = mb.to(device)
            (loss_module(mb.input_ids, mb.position_ids, mb.targets, None) / norm).backward()

    return timed_steps(peft_model, examples, device, steps, warmup, batch, prepare, backward)


def run_plain(peft_model, examples, plain_batch: int, device: str, steps: int, warmup: int, batch: int):
    """A careful plain fine-tuning loop: the step's examples grouped by length (longest first, as transformers'
    `group_by_length` does) into padded batches of `plain_batch`, the model's own loss over full-vocabulary logits."""

    def prepare(chunk):
        batches = []
        ordered = sorted(chunk, key=lambda e: -len(e.input_ids))
        for i in range(0, len(ordered), plain_batch):
            group = ordered[i:i + plain_batch]
            width = max(len(e.input_ids) for e in group)
            ids = torch.zeros((len(group), width), dtype=torch.long)
            mask = torch.zeros((len(group), width), dtype=torch.long)
            labels = torch.full((len(group), width), -100, dtype=torch.long)
            for row, e in enumerate(group):
                n = len(e.input_ids)
                ids[row, :n] = torch.tensor(e.input_ids)
                mask[row, :n] = 1
                # the model shifts labels itself: label at t is the token at t where the target at t-1 exists
                for t, target in enumerate(e.targets):
                    if target != -100:
                        labels[row, t + 1] = target
            batches.append((ids, mask, labels))
        return batches

    def backward(batches, chunk):
        for ids, mask, labels in batches:
            out = peft_model(input_ids=ids.to(device), attention_mask=mask.to(device), labels=labels.to(device))
            (out.loss * len(ids) / len(chunk)).backward()

    return timed_steps(peft_model, examples, device, steps, warmup, batch, prepare, backward)


def bench_model(name: str, builtin: str | None, args, device: str) -> dict[str, Any]:
    """One reference shape (`name`), or with `builtin` the tiny built-in student standing in for it."""
    from distill_ray.config import LoraConfig
    from distill_ray.train.core import apply_lora
    from distill_ray.train.models import best_attention, set_activation_checkpointing
    from distill_ray.train.reference_shapes import build_reference_model, choose_layers, matmul_parameters

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    attn = best_attention(device)
    layers_note = "all"
    if builtin is not None:  # tiny mode: the built-in student's shape with random weights
        from distill_ray.config import StudentConfig
        from distill_ray.train.models import load_base_model

        model = load_base_model(StudentConfig(model=builtin), device=device)
        for p in model.parameters():
            p.requires_grad_(False)
    else:
        layers, layers_note = choose_layers(name, args.layers, device)
        model = build_reference_model(name, device=device, dtype=dtype, attn=attn, layers=layers)
        model.config.use_cache = False
    moe = "qwen" in name
    targets = ATTENTION if moe else ATTENTION + ["gate_proj", "up_proj", "down_proj"]
    lora = LoraConfig(r=args.rank, alpha=2 * args.rank, target_modules=targets,
                      expert_lora=moe and args.moe_lora == "experts")
    peft_model, trainable = apply_lora(model, lora, seed=0)
    peft_model.train()
    total, active = matmul_parameters(model)
    lengths = trace_lengths(args.examples, args.max_length, args.seed, args.r1_share)
    examples = make_examples(lengths, model.config.vocab_size, args.seed)
    result: dict[str, Any] = {
        "layers": model.config.num_hidden_layers, "layers_note": layers_note,
        "params_total": total, "params_active": active, "trainable": trainable, "attention": attn,
        "mean_tokens_per_example": sum(p + r for p, r in lengths) / len(lengths), "expert_lora": lora.expert_lora,
    }
    head = model.get_output_embeddings().weight.numel()
    body = active - head  # matmul weights every real token passes through (the LM head counted apart)
    result["params_head"] = head
    settings = {"on": [True], "off": [False], "both": [True, False]}[args.checkpointing]
    runs: dict[str, Any] = {}
    for ckpt in settings:
        set_activation_checkpointing(model, ckpt)  # the same setting for both paths: like for like
        entries: dict[str, Any] = {}
        for label in ("core", "plain"):
            try:
                if label == "core":
                    timing = run_core(peft_model, examples, args.token_budget, device, args.steps, args.warmup,
                                      args.batch, args.micro_batch, args.loss_chunk_tokens)
                else:
                    timing = run_plain(peft_model, examples, args.plain_batch, device, args.steps, args.warmup,
                                       args.batch)
                entry: dict[str, Any] = dict(timing)
            except torch.OutOfMemoryError as exc:  # the plain loop may not fit where the core does
                entry = {"tokens_per_s": None, "error": f"out of memory: {str(exc)[:120]}"}
            entry["mfu"] = entry["hfu"] = None
            if entry["tokens_per_s"] and args.peak_tflops:
                # model FLOPs: forward 2N + input-gradient backward 2N (frozen base) per token, the body on every
                # real token, the LM head on the positions whose logits this path computes (the core: response
                # tokens only; the plain loop: every real token); recompute (checkpointing) only in the hfu
                head_tokens = entry["loss_tokens"] if label == "core" else entry["tokens"]
                flops = 4 * body * entry["tokens"] + 4 * head * head_tokens
                hardware = flops + (2 * body * entry["tokens"] if ckpt else 0)
                entry["mfu"] = flops / entry["seconds"] / (args.peak_tflops * 1e12)
                entry["hfu"] = hardware / entry["seconds"] / (args.peak_tflops * 1e12)
            entries[label] = entry
            gc.collect()
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
        core_tps, plain_tps = entries["core"]["tokens_per_s"], entries["plain"]["tokens_per_s"]
        entries["speedup"] = core_tps / plain_tps if core_tps and plain_tps else None
        runs["on" if ckpt else "off"] = entries
    first = runs["on" if settings[0] else "off"]
    result.update(core=first["core"], plain=first["plain"], speedup=first["speedup"],
                  gradient_checkpointing=settings[0], runs=runs)
    return result  # the model is freed with this frame; main() collects before the next one


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=["llama-3.1-8b", "qwen3-30b-a3b", "both"], default="both")
    parser.add_argument("--tiny", action="store_true", help="tiny built-in students (automatic without CUDA)")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--batch", type=int, default=None, help="examples per optimiser step")
    parser.add_argument("--examples", type=int, default=None)
    parser.add_argument("--token-budget", type=int, default=None, help="tokens per packed forward")
    parser.add_argument("--plain-batch", type=int, default=None, help="examples per padded forward (plain loop)")
    parser.add_argument("--max-length", type=int, default=4096)
    parser.add_argument("--r1-share", type=float, default=0.3, help="share of R1-like (~3K-token) traces")
    parser.add_argument("--rank", type=int, default=32)
    parser.add_argument("--checkpointing", choices=["on", "off", "both"], default="on",
                        help="activation checkpointing, the same for both paths (seed.yaml: on); both: two runs")
    parser.add_argument("--moe-lora", choices=["experts", "attention"], default="experts",
                        help="LoRA on the MoE: attention + fused experts (seed.yaml) or attention only")
    parser.add_argument("--micro-batch", type=int, default=16, help="examples per packed row at most (core)")
    parser.add_argument("--loss-chunk-tokens", type=int, default=4096, help="rows of logits per loss chunk (core)")
    parser.add_argument("--peak-tflops", type=float, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--layers", default="auto",
                        help="decoder layers of the real shapes: a number, or auto (all that fit; all off CUDA)")
    parser.add_argument("--device", default=None,
                        help="cuda (default when available) or cpu; --device cpu without --tiny runs the real "
                             "shapes on the CPU (with --layers 1: a check that the GPU command works, not a timing)")
    args = parser.parse_args(argv)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    cuda = device.startswith("cuda")
    tiny = args.tiny or (not cuda and args.device is None)
    if tiny:
        # Lengths scale with max_length (the same mix, 1/16 of the size): tiny models, a handful of seconds.
        defaults = dict(steps=1, warmup=1, batch=8, examples=16, token_budget=1024, plain_batch=4)
        args.max_length = min(args.max_length, 256)
        torch.set_num_threads(1)
    else:
        # seed.yaml: global batch 50, max_length 4096, rows of up to 16 examples and 16384 tokens; the plain loop
        # at the seed's former micro_batch of 4 padded rows
        defaults = dict(steps=4, warmup=1, batch=50, examples=250, token_budget=16384, plain_batch=4)
        if args.peak_tflops is None and cuda:
            args.peak_tflops = PEAK_BF16_TFLOPS
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    names = ["llama-3.1-8b", "qwen3-30b-a3b"] if args.model == "both" else [args.model]
    results = {}
    for name in names:
        if tiny:
            builtin = "builtin:tiny-llama" if name == "llama-3.1-8b" else "builtin:tiny-qwen3-moe"
            results[name] = bench_model(name, builtin, args, device)
        else:
            results[name] = bench_model(name, None, args, device)
        print(f"{name}: {json.dumps(results[name])}", file=sys.stderr)
        gc.collect()
        if cuda:
            torch.cuda.empty_cache()
    summary = {
        "benchmark": "train_throughput", "device": torch.cuda.get_device_name() if cuda else "cpu", "tiny": tiny,
        "peak_tflops": args.peak_tflops, "token_budget": args.token_budget, "plain_batch": args.plain_batch,
        "r1_share": args.r1_share, "max_length": args.max_length, "checkpointing": args.checkpointing,
        "batch": args.batch, "micro_batch": args.micro_batch, "loss_chunk_tokens": args.loss_chunk_tokens,
        "models": results,
    }
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
