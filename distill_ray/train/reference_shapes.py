"""The seed's two students as random-weight models of their published shapes, for throughput runs (nothing is
downloaded): the train and eval benchmarks build them here, so both measure the same architectures.

    model = build_reference_model("qwen3-30b-a3b", device="cuda", dtype=torch.bfloat16, layers=48)
    total, active = matmul_parameters(model)          # active: the experts a token visits, not all 128
    layers, why = choose_layers("qwen3-30b-a3b", "auto", "cuda")

Dimensions are those of the models' config.json (meta-llama/Llama-3.1-8B-Instruct, Qwen/Qwen3-30B-A3B-Base).
"""

from __future__ import annotations

from typing import Any

import torch

REFERENCE_SHAPES: dict[str, dict[str, Any]] = {
    "llama-3.1-8b": dict(
        model_type="llama", hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
        num_key_value_heads=8, vocab_size=128256, max_position_embeddings=131072, rope_theta=500000.0,
        rms_norm_eps=1e-5, tie_word_embeddings=False, bos_token_id=128000, eos_token_id=128009, pad_token_id=128004,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
    ),
    "qwen3-30b-a3b": dict(
        model_type="qwen3_moe", hidden_size=2048, intermediate_size=6144, moe_intermediate_size=768,
        num_hidden_layers=48, num_attention_heads=32, num_key_value_heads=4, head_dim=128, num_experts=128,
        num_experts_per_tok=8, norm_topk_prob=True, decoder_sparse_step=1, mlp_only_layers=[], vocab_size=151936,
        max_position_embeddings=40960, rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
        bos_token_id=151643, eos_token_id=151645, pad_token_id=151643,
    ),
}


def reference_config(name: str, layers: int | None = None) -> Any:
    """The transformers config of a reference shape, optionally with fewer decoder layers."""
    from transformers import AutoConfig

    if name not in REFERENCE_SHAPES:
        raise ValueError(f"unknown reference shape {name!r}; known: {', '.join(REFERENCE_SHAPES)}")
    spec = dict(REFERENCE_SHAPES[name])
    if layers is not None:
        spec["num_hidden_layers"] = layers
    return AutoConfig.for_model(spec.pop("model_type"), **spec)


def build_reference_model(name: str, *, device: str, dtype: torch.dtype, attn: str = "sdpa",
                          layers: int | None = None) -> Any:
    """Random weights, created directly in `dtype` on `device` (30B parameters in fp32 would not fit anywhere);
    every weight frozen (LoRA adds the trainable ones)."""
    from transformers import AutoModelForCausalLM

    config = reference_config(name, layers)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, attn_implementation=attn)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def matmul_parameters(model: Any) -> tuple[int, int]:
    """(total, active per token) weights that do matmuls: the input embedding (a lookup) and LoRA factors excluded,
    MoE expert weights scaled by experts-per-token / experts."""
    cfg = model.config
    total = active = 0
    embed = model.get_input_embeddings().weight
    for name, p in model.named_parameters():
        if p is embed or "lora_" in name:
            continue
        n = p.numel()
        total += n
        if ".experts." in name and getattr(cfg, "num_experts", 0):
            active += n * cfg.num_experts_per_tok // cfg.num_experts
        else:
            active += n
    return total, active


def choose_layers(name: str, requested: str, device: str, *, memory_share: float = 0.6,
                  card_bytes: int | None = None) -> tuple[int, str]:
    """(decoder layers to build, why). A number is taken as given; "auto" keeps every layer unless, on CUDA, the bf16
    weights would take more than `memory_share` of the card (the rest holds activations, logits, KV cache and LoRA
    state), and then keeps as many as fit. `card_bytes` defaults to the CUDA device's memory."""
    all_layers = int(REFERENCE_SHAPES[name]["num_hidden_layers"])
    if requested != "auto":
        layers = int(requested)
        if not 1 <= layers <= all_layers:
            raise ValueError(f"layers: {layers} is outside 1..{all_layers} for {name}")
        return layers, "requested"
    if not device.startswith("cuda"):
        return all_layers, "all"
    meta = build_reference_model(name, device="meta", dtype=torch.bfloat16, layers=1)
    outside = 2 * sum(p.numel() for n, p in meta.named_parameters() if ".layers." not in n)
    per_layer = 2 * sum(p.numel() for n, p in meta.named_parameters() if ".layers." in n)
    if card_bytes is None:
        card_bytes = torch.cuda.get_device_properties(device).total_memory
    budget = memory_share * card_bytes
    if outside + all_layers * per_layer <= budget:
        return all_layers, "all"
    layers = max(1, int((budget - outside) // per_layer))
    return layers, (f"{layers} of {all_layers}: the bf16 weights of all layers would exceed {memory_share:.0%} of "
                    "this card's memory")
