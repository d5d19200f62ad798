"""Fixtures for the evaluation-backend tests: a private model cache, mixed-length user messages, a LoRA adapter
written by PEFT, and a one-prompt-at-a-time `model.generate()` reference to compare the backends against."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from distill_ray.builtin_problems import mixed_length_messages


@pytest.fixture(scope="session", autouse=True)
def _private_cache(private_model_cache):
    """The tests of this folder build their tiny students in a private cache (tests/conftest.py)."""


def mixed_messages(n: int, seed: int = 0) -> list[str]:
    return mixed_length_messages(n, seed, max_traces=2)


def reference_generate(model, prompt_ids: list[list[int]], *, max_new_tokens: int, stop_ids: list[int],
                       pad_id: int) -> list[list[int]]:
    """What a careful script does: `model.generate()` on one prompt at a time, greedy, cut after the first stop."""
    outputs = []
    with torch.inference_mode():
        for ids in prompt_ids:
            mask = torch.ones((1, len(ids)), dtype=torch.long)
            out = model.generate(input_ids=torch.tensor([ids]), attention_mask=mask,
                                 max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop_ids,
                                 pad_token_id=pad_id)
            outputs.append(out[0, len(ids):].tolist())
    return [_cut(o, stop_ids) for o in outputs]


def _cut(tokens: list[int], stop_ids: list[int]) -> list[int]:
    for j, token in enumerate(tokens):
        if token in stop_ids:
            return tokens[:j + 1]
    return tokens


def top2_margin(model, ids: list[int]) -> float:
    """Gap between the two largest next-token logits after `ids` (one unpadded row): how close greedy was to a tie."""
    with torch.inference_mode():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].float()
    top = torch.topk(logits, 2).values
    return float(top[0] - top[1])


def divergences(model, prompt_ids, got, want) -> list[tuple[int, int, float]]:
    """(prompt index, first differing position, reference top-2 margin there) for every response that differs."""
    found = []
    for i, (a, b) in enumerate(zip(got, want, strict=True)):
        if a != b:
            j = next((k for k, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            found.append((i, j, top2_margin(model, prompt_ids[i] + b[:j])))
    return found


@pytest.fixture(scope="session")
def lora_adapter(tmp_path_factory):
    """A factory: lora_adapter(model_name, seed) -> folder of a PEFT LoRA adapter with random (non-zero) A and B,
    so it really changes the model's outputs (attention projections; on the MoE student the experts as well)."""
    from peft import LoraConfig, get_peft_model

    from distill_ray.config import StudentConfig
    from distill_ray.train.models import load_base_model

    made: dict[tuple[str, int], str] = {}

    def make(model_name: str, seed: int = 0) -> str:
        if (model_name, seed) not in made:
            base = load_base_model(StudentConfig(model=model_name))
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                # On the MoE student the fused expert weights are adapted too (PEFT target_parameters), as with
                # the training stage's expert_lora: merging and restoring must handle both kinds of layer.
                experts = ["experts.gate_up_proj", "experts.down_proj"] if "moe" in model_name else None
                config = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                                    target_parameters=experts, init_lora_weights=False, task_type="CAUSAL_LM")
                peft_model = get_peft_model(base, config)
            folder = tmp_path_factory.mktemp(f"adapter-{model_name.split(':')[-1]}-{seed}")
            peft_model.save_pretrained(str(folder))
            made[(model_name, seed)] = str(folder)
        return made[(model_name, seed)]

    return make


@pytest.fixture(scope="session")
def tools():
    """The helpers above, for tests: mixed_messages, reference_generate, divergences, top2_margin."""
    return SimpleNamespace(mixed_messages=mixed_messages, reference_generate=reference_generate,
                           divergences=divergences, top2_margin=top2_margin)
