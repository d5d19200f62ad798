"""GPU memory of one vLLM evaluation engine, by component, for the dry run: weights, LoRA buffers, the KV cache left.

    estimate = estimate_eval_memory(student, max_new_tokens=4096, gpu_gib=44.99)
    estimate["components"]   # {"weights_gib": 28.4, "lora_gib": 1.6, "overhead_gib": 1.5, "kv_cache_gib": 9.0}
    estimate["full_length_sequences"]   # how many max_model_len sequences that KV cache holds (< 1: cannot run)

What vLLM 0.32 allocates, per GPU of a tensor-parallel group (`engine_arguments` gives the settings):
- weights: bf16 parameters over tensor_parallel (every expert counted);
- LoRA buffers, allocated for every LoRA-capable layer at `max_lora_rank` whatever the adapter targets: for each MoE
  layer `vllm/lora/layers/fused_moe.py` holds w1/w3 lora_A (experts x rank x hidden; rank / tp when fully sharded),
  w1/w3 lora_B (experts x intermediate/tp x rank), w2 lora_A (experts x rank x intermediate/tp) and w2 lora_B
  (experts x hidden x rank; hidden / tp when fully sharded); attention (and a dense model's MLP) projections hold
  A (rank x in) and B (out x rank), one of them sharded over tp (both when fully sharded);
- a fixed allowance for the CUDA context, activations of the profile run and CUDA graphs (OVERHEAD_GIB);
- the KV cache gets the rest of `gpu_memory_utilization` x the GPU: 2 x layers x kv heads (over tp) x head dim x
  2 bytes per token. max_model_len is the longest prompt plus max_new_tokens; a dry run does not tokenize the
  benchmarks, so it assumes PLANNING_PROMPT_TOKENS for the prompt.

Not guaranteed: vLLM's profile-run activation peak and CUDA graph memory (one allowance stands for both), embedding
and lm_head LoRA buffers (not counted: under 0.1 GiB for these vocabularies at rank <= 64), other vLLM releases.
"""

from __future__ import annotations

from typing import Any

from distill_ray.config import StudentConfig
from distill_ray.evaluate.vllm_args import max_lora_rank_for

GIB = 1024**3
BF16 = 2
OVERHEAD_GIB = 1.5  # CUDA context, profile-run activations, CUDA graphs
PLANNING_PROMPT_TOKENS = 1024  # the longest prompt a dry run assumes (chat template + problem)
GPU_MEMORY_UTILIZATION = 0.9  # VLLMBackend's default


def lora_buffer_elements(shape: dict[str, Any], rank: int, tp: int, fully_sharded: bool) -> int:
    """Elements of vLLM's LoRA buffers for one adapter slot, per GPU, over all layers."""
    hidden, layers = shape["hidden"], shape["layers"]
    q, kv = shape["heads"] * shape["head_dim"], shape["kv_heads"] * shape["head_dim"]
    projections = [(hidden, q + 2 * kv), (q, hidden)]  # qkv (column parallel), o (row parallel)
    if not shape["experts"]:
        projections += [(hidden, 2 * shape["intermediate"]), (shape["intermediate"], hidden)]
    per_layer = 0
    for fan_in, fan_out in projections:
        per_layer += (rank * fan_in + rank * fan_out) // tp if fully_sharded else rank * fan_in + rank * fan_out // tp
    if shape["experts"]:
        experts, inter = shape["experts"], shape["expert_intermediate"] // tp
        w13_a = 2 * experts * (rank // tp if fully_sharded else rank) * hidden
        w13_b = 2 * experts * inter * rank
        w2_a = experts * rank * inter
        w2_b = experts * (hidden // tp if fully_sharded else hidden) * rank
        per_layer += w13_a + w13_b + w2_a + w2_b
    return per_layer * layers


def kv_bytes_per_token(shape: dict[str, Any], tp: int) -> int:
    """KV-cache bytes per token per GPU (kv heads split over tp, replicated when fewer than tp)."""
    kv_heads = max(1, shape["kv_heads"] // tp)
    return 2 * shape["layers"] * kv_heads * shape["head_dim"] * BF16


def estimate_eval_memory(student: StudentConfig, *, max_new_tokens: int, gpu_gib: float,
                         prompt_tokens: int = PLANNING_PROMPT_TOKENS,
                         utilization: float = GPU_MEMORY_UTILIZATION) -> dict[str, Any]:
    """Per-GPU memory of `student`'s vLLM engine on a GPU of `gpu_gib`, and how many full-length sequences fit.
    Raises train.memory.UnknownShapeError for a model whose shape is unknown here."""
    from distill_ray.planning import TOTAL_PARAMETERS
    from distill_ray.train.memory import model_shape, parameter_counts

    shape = model_shape(student.model)
    tp = student.evaluation.tensor_parallel
    rank = max_lora_rank_for(student.lora.r)
    fully_sharded = tp > 1  # as engine_arguments sets it
    parameters = TOTAL_PARAMETERS.get(student.model) or parameter_counts(shape, student.lora)[0]
    weights = parameters * BF16 / tp / GIB
    lora = lora_buffer_elements(shape, rank, tp, fully_sharded) * BF16 / GIB
    usable = gpu_gib * utilization
    kv_cache = usable - weights - lora - OVERHEAD_GIB
    max_model_len = prompt_tokens + max_new_tokens
    per_token = kv_bytes_per_token(shape, tp)
    sequences = max(0.0, kv_cache) * GIB / (per_token * max_model_len)
    return {"tensor_parallel": tp, "max_lora_rank": rank, "fully_sharded_loras": fully_sharded,
            "max_model_len": max_model_len, "usable_gib": round(usable, 2), "kv_bytes_per_token": per_token,
            "components": {"weights_gib": round(weights, 2), "lora_gib": round(lora, 2), "overhead_gib": OVERHEAD_GIB,
                           "kv_cache_gib": round(kv_cache, 2)},
            "full_length_sequences": round(sequences, 1)}


def format_eval_memory_rows(estimates: dict[str, dict[str, Any]]) -> list[str]:
    """Table lines, one per student: {name: estimate_eval_memory(...) plus "node_type"}."""
    rows = [f"{'student':<18} {'node type':<18} {'tp':>2} {'rank':>4} {'weights':>8} {'lora':>6} {'overhead':>8} "
            f"{'kv cache':>8} {'usable':>7} {'max_len':>7} {'full seqs':>9}"]
    for name, est in estimates.items():
        c = est["components"]
        rows.append(f"{name:<18} {est.get('node_type', '-'):<18} {est['tensor_parallel']:>2} {est['max_lora_rank']:>4} "
                    f"{c['weights_gib']:>8.2f} {c['lora_gib']:>6.2f} {c['overhead_gib']:>8.2f} "
                    f"{c['kv_cache_gib']:>8.2f} {est['usable_gib']:>7.2f} {est['max_model_len']:>7} "
                    f"{est['full_length_sequences']:>9.1f}")
    return rows


def minimum_engine_gib(student: StudentConfig, *, max_new_tokens: int,
                       prompt_tokens: int = PLANNING_PROMPT_TOKENS) -> float:
    """GiB per GPU the engine needs to hold its weights, LoRA buffers, overhead and one full-length sequence."""
    estimate = estimate_eval_memory(student, max_new_tokens=max_new_tokens, gpu_gib=0.0, prompt_tokens=prompt_tokens)
    c = estimate["components"]
    return (c["weights_gib"] + c["lora_gib"] + c["overhead_gib"]
            + estimate["kv_bytes_per_token"] * estimate["max_model_len"] / GIB)
