"""A per-GPU memory estimate of a student's training step, by component, from the model's shape and the config.

    from distill_ray.train.memory import estimate_train_memory, format_memory_rows
    est = estimate_train_memory(sweep.students["llama-3.1-8b"], sweep.training)
    est["total_gib"], est["components"]["logits_chunk_gib"]

Shapes: the seed's real students come from `reference_shapes.py` (matched by hub id), a local folder from its
config.json, the built-in students from their tiny recipes. Components (GiB, per worker):
- weights: the frozen base in the compute dtype, whole under ZeRO-0/2, 1/world under ZeRO-3 plus the gathered
  working set (two decoder layers, prefetch included);
- lora / gradients / optimizer: the adapter in the compute dtype, its fp32 gradients, and the fp32 master copy with
  Adam's two moments (partitioned over the world under ZeRO-2/3, with DeepSpeed's gradient bucket);
- activations at the largest row the data path can build (`largest_row_tokens`: the token budget, or `max_length`
  where one example alone exceeds it, since such an example gets a row of its own) with and without activation
  checkpointing (the configured one counts towards the total): what autograd saves per token and
  layer for a frozen base with LoRA (norms, q/k/v/out, the MLP or the k routed experts), or under checkpointing one
  hidden state per layer plus one layer recomputed, and the backward's transient buffers;
- logits_chunk: one chunk of the chunked loss (rows x vocab: the head's output, its fp32 copy, the softmax gradient);
- overhead: the CUDA context and allocator slack (0 on CPU).

Not guaranteed: an estimate, checked on CPU against the measured peak of the tiny models (tests/train/test_memory.py
states the tolerance), not against every kernel's workspace; flash/varlen attention is assumed on GPU (no
sequence-squared term). Fragmentation under long runs can add a few GiB.
"""

from __future__ import annotations

import json
import os
from typing import Any

GIB = 1024**3
CUDA_OVERHEAD_GIB = 1.5  # context, cuBLAS/NCCL workspaces, allocator slack
ZERO2_BUCKET = 5e8  # deepspeed_config.py: reduce_bucket_size
ZERO3_BUCKET = 5e7

# hub id (lower case, revision-free) -> reference shape
HUB_SHAPES = {
    "meta-llama/llama-3.1-8b-instruct": "llama-3.1-8b",
    "meta-llama/llama-3.1-8b": "llama-3.1-8b",
    "meta-llama/meta-llama-3.1-8b-instruct": "llama-3.1-8b",
    "qwen/qwen3-30b-a3b-base": "qwen3-30b-a3b",
    "qwen/qwen3-30b-a3b": "qwen3-30b-a3b",
}


class UnknownShapeError(ValueError):
    """The student's model has no known shape (not a reference shape, a built-in, or a local config.json)."""


def model_shape(model: str) -> dict[str, Any]:
    """The architecture numbers the estimate needs: hidden, intermediate, layers, heads, kv heads, head dim, vocab,
    experts (0 for dense), experts per token, expert intermediate."""
    if model.startswith("builtin:"):
        from distill_ray.train.models import TINY_RECIPES, TOKENIZER_VOCAB

        cfg = dict(TINY_RECIPES[model].config, vocab_size=TOKENIZER_VOCAB)  # the vocabulary's upper bound
    elif model.lower() in HUB_SHAPES:
        from distill_ray.train.reference_shapes import REFERENCE_SHAPES

        cfg = REFERENCE_SHAPES[HUB_SHAPES[model.lower()]]
    elif os.path.isfile(os.path.join(model, "config.json")):
        with open(os.path.join(model, "config.json")) as handle:
            cfg = json.load(handle)
    else:
        raise UnknownShapeError(
            f"{model}: no known shape for a memory estimate (known: {', '.join(sorted(HUB_SHAPES))}, the built-in "
            "students, or a local folder with config.json)")
    h, heads = int(cfg["hidden_size"]), int(cfg["num_attention_heads"])
    experts = int(cfg.get("num_experts", 0) or cfg.get("num_local_experts", 0) or 0)
    return {
        "hidden": h, "intermediate": int(cfg["intermediate_size"]), "layers": int(cfg["num_hidden_layers"]),
        "heads": heads, "kv_heads": int(cfg.get("num_key_value_heads", heads)),
        "head_dim": int(cfg.get("head_dim") or h // heads), "vocab": int(cfg["vocab_size"]),
        # Qwen-MoE configs say num_experts / moe_intermediate_size; Mixtral-style ones num_local_experts and put the
        # expert width in intermediate_size (they have no dense MLP)
        "experts": experts, "experts_per_token": int(cfg.get("num_experts_per_tok", 0) or 0),
        "expert_intermediate": int(cfg.get("moe_intermediate_size", 0) or (cfg["intermediate_size"] if experts else 0)),
        "tied": bool(cfg.get("tie_word_embeddings", False)),
    }


def _linear_shapes(s: dict[str, Any]) -> dict[str, tuple[int, int]]:
    """(in, out) of each per-layer projection PEFT can target by name (dense MLP only on dense models)."""
    h, q, kv = s["hidden"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    out = {"q_proj": (h, q), "k_proj": (h, kv), "v_proj": (h, kv), "o_proj": (q, h)}
    if not s["experts"]:
        out.update(gate_proj=(h, s["intermediate"]), up_proj=(h, s["intermediate"]), down_proj=(s["intermediate"], h))
    return out


def parameter_counts(s: dict[str, Any], lora) -> tuple[int, int, int]:
    """(base parameters, trainable LoRA parameters, parameters of one decoder layer)."""
    h = s["hidden"]
    layer = sum(i * o for i, o in _linear_shapes(s).values()) + 2 * h + 2 * s["head_dim"]
    if s["experts"]:
        layer += s["experts"] * 3 * h * s["expert_intermediate"] + s["experts"] * h
    base = s["layers"] * layer + s["vocab"] * h * (1 if s["tied"] else 2) + h
    per_layer = sum(lora.r * (i + o) for name, (i, o) in _linear_shapes(s).items() if name in lora.target_modules)
    if lora.expert_lora and s["experts"]:
        e, mi = s["experts"], s["expert_intermediate"]
        per_layer += lora.r * e * ((h + 2 * mi) + (mi + h))  # gate_up (E, 2I, h) and down (E, h, I), as PEFT does
    return base, s["layers"] * per_layer, layer


def _activation_bytes_per_token_layer(s: dict[str, Any], act: int, lora) -> float:
    """Bytes autograd keeps per token in one decoder layer without checkpointing (frozen base, LoRA)."""
    h, q, kv = s["hidden"], s["heads"] * s["head_dim"], s["kv_heads"] * s["head_dim"]
    # two RMSNorms: the input (its fp32 upcast when computing in bf16) and the normalised output
    norms = 2 * (h * 4 + h * act) if act == 2 else 2 * 2 * h * act
    # the normed input (LoRA A's input), q and k after RoPE, v, the attention output (o_proj's input); residual adds
    # and RoPE's multiplications by constants save nothing of their own
    attention = (h + 2 * q + 2 * kv) * act
    if s["experts"]:
        k, mi = s["experts_per_token"], s["expert_intermediate"]
        mlp = (h + k * (2 * h + 4 * mi)) * act + 3 * s["experts"] * 4  # routed copies, gate/up/act/product; router
    else:
        mlp = (h + 4 * s["intermediate"]) * act  # input, gate, up, act(gate), gate*up
    dropout = (len(lora.target_modules) * h * act) if lora.dropout > 0 else 0
    return norms + attention + mlp + dropout


def largest_row_tokens(training) -> int:
    """The most tokens one forward pass can hold, as train.data.make_micro_batches builds rows: packed under a token
    budget, an example is first truncated to max_length and one longer than the budget gets a row of its own (it is
    neither split nor dropped), so the largest row is max(budget, max_length); packed without a budget, micro_batch
    whole examples; unpacked, micro_batch rows padded to the longest (at most max_length)."""
    if training.packing and training.micro_batch_tokens:
        return max(training.micro_batch_tokens, training.max_length)
    return training.micro_batch * training.max_length


def estimate_train_memory(student, training, *, device: str = "cuda", world: int | None = None) -> dict[str, Any]:
    """Estimated per-worker memory (GiB) of training `student` under `training`, by component, and `total_gib`.

    `world` defaults to student.num_workers; `device` "cuda" assumes bf16 compute when student.dtype is auto
    (what the runs use), "cpu" fp32. Raises UnknownShapeError for a model without a known shape.
    """
    s = model_shape(student.model)
    world = world or student.num_workers
    stage = student.deepspeed_stage
    on_gpu = device.startswith("cuda")
    act = 4 if student.dtype == "float32" or (student.dtype == "auto" and not on_gpu) else 2
    base, trainable, layer = parameter_counts(s, student.lora)

    weights = base * act / (world if stage == 3 else 1)
    gathered = 2 * layer * act if stage == 3 else 0.0
    if stage == 0:  # plain torch: fp32 adapter, fp32 gradients, Adam moments, all local
        lora_b, grads, optim = trainable * 4, trainable * 4, trainable * 8
    else:  # DeepSpeed: adapter in the compute dtype; fp32 master + moments + gradients partitioned over ranks
        lora_b = trainable * act / (world if stage == 3 else 1)
        grads = trainable * 4 / world + min(trainable, ZERO3_BUCKET if stage == 3 else ZERO2_BUCKET) * act
        optim = trainable * 12 / world

    tokens = largest_row_tokens(training)
    per_layer = _activation_bytes_per_token_layer(s, act, student.lora)
    transient = tokens * 2 * s["hidden"] * act  # the backward's incoming and outgoing hidden-state gradients
    if student.lora.expert_lora and s["experts"]:
        # PEFT's target_parameters wrapper forms each fused expert tensor's delta (E x out x in), the adapted weight,
        # and in the backward that weight's gradient, one layer at a time
        transient += 3 * s["experts"] * 3 * s["hidden"] * s["expert_intermediate"] * act
    no_ckpt = tokens * per_layer * s["layers"] + transient
    ckpt = tokens * s["hidden"] * act * s["layers"] + tokens * per_layer + transient
    chunk = min(tokens, training.loss_chunk_tokens)
    # head output (compute dtype), its fp32 copy, the fp32 softmax gradient; the selected hidden states
    logits = chunk * s["vocab"] * (act + 4 + 4) + tokens * s["hidden"] * act
    if training.loss_kernel == "liger":
        logits = tokens * s["hidden"] * act * 2 + min(tokens, 4096) * s["vocab"] * 4

    components = {
        "weights_gib": weights / GIB, "zero3_gathered_gib": gathered / GIB, "lora_gib": lora_b / GIB,
        "gradients_gib": grads / GIB, "optimizer_gib": optim / GIB,
        "activations_gib": (ckpt if student.gradient_checkpointing else no_ckpt) / GIB,
        "logits_chunk_gib": logits / GIB, "overhead_gib": CUDA_OVERHEAD_GIB if on_gpu else 0.0,
    }
    return {
        "model": student.model, "device": device, "world": world, "deepspeed_stage": stage,
        "tokens_per_micro_batch": tokens, "base_parameters": base, "trainable_parameters": trainable,
        "gradient_checkpointing": student.gradient_checkpointing,
        "activations_checkpointing_gib": ckpt / GIB, "activations_no_checkpointing_gib": no_ckpt / GIB,
        "components": components, "total_gib": sum(components.values()),
    }


def format_memory_rows(estimates: dict[str, dict[str, Any]], gpu_gib: dict[str, float] | None = None) -> list[str]:
    """Table lines, one per student: {name: estimate} (and optionally {name: the GPU memory of its node type})."""
    head = (f"{'student':<18} {'world':>5} {'zero':>4} {'tokens':>7} {'weights':>8} {'lora+opt':>8} {'activ.':>7} "
            f"{'(ckpt/no)':>13} {'logits':>7} {'total':>7} {'gpu':>6}")
    rows = [head]
    for name, est in estimates.items():
        c = est["components"]
        gpu = f"{gpu_gib[name]:.0f}" if gpu_gib and name in gpu_gib else "-"
        rows.append(
            f"{name:<18} {est['world']:>5} {est['deepspeed_stage']:>4} {est['tokens_per_micro_batch']:>7} "
            f"{c['weights_gib'] + c['zero3_gathered_gib']:>8.1f} "
            f"{c['lora_gib'] + c['gradients_gib'] + c['optimizer_gib']:>8.1f} {c['activations_gib']:>7.1f} "
            f"{est['activations_checkpointing_gib']:>6.1f}/{est['activations_no_checkpointing_gib']:<6.1f} "
            f"{c['logits_chunk_gib']:>7.1f} {est['total_gib']:>7.1f} {gpu:>6}")
    return rows
