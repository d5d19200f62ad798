"""Generation backends for evaluation: transformers (CPU or GPU) and vLLM (GPU, LoRA adapters served per request).

    backend = TransformersBackend(student_config, adapter_path=None, batch_size=32)
    responses = backend.generate(["user message", ...], max_new_tokens=512)

Both decode greedily and return one response string per prompt, in prompt order. The transformers backend sorts
prompts by length so each batch pads little, and stops a batch as soon as every sequence in it has ended. The vLLM
backend needs the `gpu` extra and a CUDA device; it is imported lazily so CPU installs never touch it. Neither backend
guarantees bit-identical outputs across hardware (floating-point reduction order differs).
"""

from __future__ import annotations

from typing import Any

from distill_ray.config import StudentConfig


class TransformersBackend:
    """Greedy batched generation with transformers; the base model when adapter_path is None."""

    def __init__(self, student: StudentConfig, adapter_path: str | None = None, *, batch_size: int = 32,
                 device: str | None = None):
        import torch

        from distill_ray.train import build_chat_prompt, load_student

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.model, self.tokenizer = load_student(student, adapter_path, device=self.device)
        self.model.eval()
        self.batch_size = batch_size
        self._build_chat_prompt = build_chat_prompt
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # decoder-only generation continues from the right edge

    def _stop_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        for token in ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>"):
            token_id = self.tokenizer.convert_tokens_to_ids(token)
            if isinstance(token_id, int) and token_id != self.tokenizer.unk_token_id:
                ids.add(token_id)
        return sorted(i for i in ids if i is not None)

    def generate(self, prompts: list[str], *, max_new_tokens: int) -> list[str]:
        import torch

        texts = [self._build_chat_prompt(self.tokenizer, p) for p in prompts]
        lengths = [len(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        outputs: list[str] = [""] * len(texts)
        stop_ids = self._stop_ids()
        for start in range(0, len(order), self.batch_size):
            batch_idx = order[start:start + self.batch_size]
            enc = self.tokenizer([texts[i] for i in batch_idx], return_tensors="pt", padding=True,
                                 add_special_tokens=False).to(self.device)
            with torch.inference_mode():
                generated = self.model.generate(
                    **enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                    pad_token_id=self.tokenizer.pad_token_id,
                )
            new_tokens = generated[:, enc["input_ids"].shape[1]:]
            for row, i in enumerate(batch_idx):
                outputs[i] = self.tokenizer.decode(new_tokens[row], skip_special_tokens=True)
        return outputs


class VLLMBackend:
    """vLLM engine on one GPU; adapters attach per call (LoRARequest), so one engine serves every checkpoint."""

    def __init__(self, student: StudentConfig, *, max_lora_rank: int = 64, gpu_memory_utilization: float = 0.9):
        from vllm import LLM  # noqa: PLC0415 - GPU extra only

        self.llm = LLM(model=student.model, revision=student.revision, enable_lora=True,
                       max_lora_rank=max_lora_rank, gpu_memory_utilization=gpu_memory_utilization)
        self.tokenizer = self.llm.get_tokenizer()
        self._adapters: dict[str, int] = {}

    def generate(self, prompts: list[str], *, max_new_tokens: int, adapter_path: str | None = None) -> list[str]:
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        lora: Any = None
        if adapter_path:
            lora_id = self._adapters.setdefault(adapter_path, len(self._adapters) + 1)
            lora = LoRARequest(f"adapter-{lora_id}", lora_id, adapter_path)
        messages = [[{"role": "user", "content": p}] for p in prompts]
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens)
        results = self.llm.chat(messages, params, lora_request=lora, use_tqdm=False)
        return [r.outputs[0].text for r in results]
