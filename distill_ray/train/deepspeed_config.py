"""DeepSpeed configuration for the training core: ZeRO-2 (dense 8B) or ZeRO-3 (30B MoE), bf16 on GPU, fp32 on CPU.

    cfg = deepspeed_config(stage=3, micro_batch=8, accumulation=4, world=2, bf16=True)

The batch fields satisfy DeepSpeed's rule train_batch = micro x accumulation x world, but they are bookkeeping only:
the core sets the accumulation boundary itself (`set_gradient_accumulation_boundary`) and decides which examples
form a step, so the optimiser always sees exactly `training.global_batch` examples whatever the world size.

Not guaranteed: the bucket sizes are reasonable defaults for one 8xH100 node, not tuned for every cluster.
"""

from __future__ import annotations

from typing import Any


def deepspeed_config(stage: int, micro_batch: int, accumulation: int, world: int, bf16: bool,
                     gradient_clipping: float = 1.0, on_gpu: bool = True) -> dict[str, Any]:
    """A DeepSpeed config dict for a client-provided torch optimiser and LR scheduler."""
    zero: dict[str, Any] = {"stage": stage, "contiguous_gradients": True, "overlap_comm": on_gpu}
    if stage == 2:
        zero.update(reduce_scatter=True, reduce_bucket_size=5e8, allgather_bucket_size=5e8)
    if stage == 3:
        zero.update(
            reduce_bucket_size=5e7,
            stage3_prefetch_bucket_size=5e7,
            # Small (LoRA, norm) tensors stay whole on every rank: gathering them costs more than it saves.
            stage3_param_persistence_threshold=1e5,
            stage3_max_live_parameters=1e9,
            stage3_max_reuse_distance=1e9,
            # The adapter is gathered explicitly at save time; the 16-bit whole-model copy would be the full 30B.
            stage3_gather_16bit_weights_on_model_save=False,
        )
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": accumulation,
        "train_batch_size": micro_batch * accumulation * world,
        "gradient_clipping": gradient_clipping,
        "zero_optimization": zero,
        "bf16": {"enabled": bf16},
        "fp16": {"enabled": False},
        "zero_allow_untested_optimizer": True,
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 1 << 30,
        "wall_clock_breakdown": False,
    }
