"""The train stage: LoRA adapters on verified traces, with Ray Train + DeepSpeed, or in one process.

    from distill_ray.train import train_student, load_student, build_chat_prompt
    summary = train_student(examples, sweep.students["qwen"], sweep.training, "runs/x/train", use_ray=True)
    model, tokenizer = load_student(sweep.students["qwen"], summary["checkpoints"][-1]["path"])

`train_student` returns {"checkpoints": [CheckpointInfo, ...], "trainable_parameters", "truncated_examples",
"truncated_tokens", "examples", "tokens", "final_loss", "loss_curve": [[step, loss], ...], ...}. Steps are
`training.samples // training.global_batch`; a checkpoint (PEFT adapter) is written every `checkpoint_every` steps
and at the last step. See core.py for the exactness guarantees and ray_train.py for Ray Train V2 and Tune.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from distill_ray.train.models import build_chat_prompt, end_of_turn_token, load_student

if TYPE_CHECKING:
    from distill_ray.config import StudentConfig, TrainingConfig

__all__ = ["build_chat_prompt", "end_of_turn_token", "load_student", "train_student"]


def train_student(examples: list[dict], student: StudentConfig, training: TrainingConfig, output_dir: str, *,
                  use_ray: bool = True, resume: bool = True, callbacks: list | None = None,
                  progress_file: str | None = None) -> dict[str, Any]:
    """Train a LoRA adapter for `student` on TrainExample rows; returns checkpoints and training statistics.

    use_ray=True runs a Ray Train V2 TorchTrainer with `student.num_workers` workers (Ray must be initialised or
    initialisable); use_ray=False runs the same core in this process. resume=True continues from the newest
    complete checkpoint under `output_dir`; resume=False starts over. `callbacks` (Ray Train UserCallbacks, use_ray
    only) see each checkpoint once it is persisted; `progress_file` (use_ray only) receives the last step.
    """
    if not examples:
        raise ValueError("train_student: no training examples")
    if use_ray:
        from distill_ray.train.ray_train import train_with_ray

        return train_with_ray(examples, student, training, output_dir, resume=resume, callbacks=callbacks,
                              progress_file=progress_file)
    if student.num_workers != 1:
        raise ValueError("use_ray=False runs one process; set student.num_workers to 1 or use Ray")
    from distill_ray.train.core import train_local

    return train_local(examples, student, training, output_dir, resume=resume)
