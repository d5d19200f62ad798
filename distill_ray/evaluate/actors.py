"""Evaluation engines that stay loaded: one base model (transformers) or one vLLM engine serves every checkpoint.

    engine = EvalEngine(student_cfg, backend="transformers", batch_size=32)          # plain object, no Ray needed
    base = engine.generate(messages, max_new_tokens=512)                             # the base model
    step100 = engine.generate(messages, max_new_tokens=512, adapter_path="ckpt/step-100")
    info = engine.generate_with_info(messages, max_new_tokens=512)   # Generation(text, finish_reason, tokens)

    handle = remote_eval_engine(student_cfg, evaluation_cfg)                         # the same class as a Ray actor
    responses = ray.get(handle.generate.remote(messages, max_new_tokens=512, adapter_path=path))

Loading an 8B or 30B base takes minutes and a checkpoint's adapter takes seconds, so a sweep's evaluator keeps one
engine per (student, GPU) and sends it adapter paths one at a time: the transformers engine swaps a merged LoRA in
and out of the loaded weights (restoring the exact base weights in between), the vLLM engine attaches a LoRARequest
per call. On a GPU node the actor asks for one whole GPU.

Not guaranteed: requests to one actor run one at a time (an actor is single-threaded), so several checkpoints in
parallel need several actors; a vLLM engine must be built with a max_lora_rank at least every adapter's rank.
"""

from __future__ import annotations

from typing import Any, Literal

from distill_ray.config import EvaluationConfig, StudentConfig
from distill_ray.evaluate.backends import Generation


class EvalEngine:
    """A generation engine for one student that evaluates one adapter path (or the base model) per call.

    tensor_parallel (vLLM only): GPUs the engine shards the model over; they must all be visible to this process
    (an actor reserving that many GPUs, as evaluate.pool's workers do).
    """

    def __init__(self, student: StudentConfig, *, backend: Literal["transformers", "vllm"] = "transformers",
                 batch_size: int = 32, max_batch_tokens: int | None = None, device: str | None = None,
                 max_lora_rank: int | None = None, tensor_parallel: int = 1):
        self.backend_name = backend
        if backend == "vllm":
            from distill_ray.evaluate.backends import VLLMBackend

            self.backend: Any = VLLMBackend(student, max_lora_rank=max_lora_rank or max(64, student.lora.r),
                                            tensor_parallel_size=tensor_parallel)
        else:
            from distill_ray.evaluate.backends import TransformersBackend

            self.backend = TransformersBackend(student, batch_size=batch_size, max_batch_tokens=max_batch_tokens,
                                               device=device)

    def generate(self, prompts: list[str], *, max_new_tokens: int, adapter_path: str | None = None) -> list[str]:
        """Greedy responses to the user messages from the base model plus `adapter_path` (None: the base alone)."""
        if self.backend_name == "vllm":
            return self.backend.generate(prompts, max_new_tokens=max_new_tokens, adapter_path=adapter_path)
        self.backend.load_adapter(adapter_path)
        return self.backend.generate(prompts, max_new_tokens=max_new_tokens)

    def generate_with_info(self, prompts: list[str], *, max_new_tokens: int,
                           adapter_path: str | None = None) -> list[Generation]:
        """`generate` with each response's finish reason ("stop"/"length") and generated-token count
        (`backends.Generation` tuples)."""
        if self.backend_name == "vllm":
            return self.backend.generate_with_info(prompts, max_new_tokens=max_new_tokens, adapter_path=adapter_path)
        self.backend.load_adapter(adapter_path)
        return self.backend.generate_with_info(prompts, max_new_tokens=max_new_tokens)

    def adapter(self) -> str | None:
        """The adapter the transformers engine currently has merged (None for vLLM, which attaches per request)."""
        return getattr(self.backend, "adapter_path", None)


def remote_eval_engine(student: StudentConfig, evaluation: EvaluationConfig, *, num_gpus: float | None = None,
                       num_cpus: float = 1.0, device: str | None = None) -> Any:
    """An EvalEngine as a Ray actor sized for its backend: one whole GPU for vLLM or when CUDA is present on the
    cluster, else CPU only. Ray must already be initialised."""
    import ray

    if num_gpus is None:
        num_gpus = 1.0 if evaluation.backend == "vllm" or ray.cluster_resources().get("GPU", 0) >= 1 else 0.0
    actor_class = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(EvalEngine)
    return actor_class.remote(student, backend=evaluation.backend, batch_size=evaluation.batch_size,
                              max_batch_tokens=evaluation.max_batch_tokens, device=device)
