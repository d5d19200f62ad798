"""The vLLM path at its boundary: vllm cannot be installed here (its wheel is far over what can be carried),
so `vllm.LLM`, `SamplingParams` and `LoRARequest` are replaced by a fake that checks what our backend passes it —
LoRA enabled, `max_lora_rank` at least every adapter's rank, one `LoRARequest` per adapter path with a stable id,
greedy sampling with the tokenizer's stop tokens, token-id prompts, the tensor parallel size — and answers with
canned outputs whose finish reasons and token counts must reach the evaluation unchanged."""

from __future__ import annotations

import dataclasses
import json
import sys
import types

import pytest

from distill_ray.config import StudentConfig
from distill_ray.evaluate.backends import VLLMBackend, stop_token_ids
from distill_ray.train.models import load_tokenizer

# What vllm.LLM(...) accepts among the arguments our backend may pass; anything else is a TypeError, as in vLLM.
LLM_ARGUMENTS = {"model", "enable_lora", "max_lora_rank", "max_loras", "gpu_memory_utilization", "dtype",
                 "enforce_eager", "tensor_parallel_size", "revision", "max_model_len"}
VLLM_LORA_RANKS = {1, 8, 16, 32, 64, 128, 256, 320, 512}  # the max_lora_rank values vLLM's LoRA config accepts
SAMPLING_ARGUMENTS = {"temperature", "max_tokens", "stop_token_ids", "skip_special_tokens", "top_p", "n", "seed"}


@dataclasses.dataclass
class FakeLoRARequest:  # vllm.lora.request.LoRARequest(lora_name, lora_int_id, lora_path)
    lora_name: str
    lora_int_id: int
    lora_path: str = ""

    def __post_init__(self) -> None:
        if self.lora_int_id < 1:
            raise ValueError(f"lora_int_id must be > 0, got {self.lora_int_id}")


class FakeSamplingParams:
    def __init__(self, **kwargs):
        unknown = set(kwargs) - SAMPLING_ARGUMENTS
        if unknown:
            raise TypeError(f"SamplingParams got unexpected arguments {sorted(unknown)}")
        self.kwargs = kwargs


class FakeLLM:
    built: list[dict] = []
    calls: list[dict] = []

    def __init__(self, **kwargs):
        unknown = set(kwargs) - LLM_ARGUMENTS
        if unknown:
            raise TypeError(f"LLM got unexpected arguments {sorted(unknown)}")
        if kwargs.get("enable_lora") and kwargs.get("max_lora_rank") not in VLLM_LORA_RANKS:
            raise ValueError(f"max_lora_rank {kwargs.get('max_lora_rank')} is not one of {sorted(VLLM_LORA_RANKS)}")
        self.kwargs = kwargs
        FakeLLM.built.append(kwargs)
        self.ids_by_path: dict[str, int] = {}

    def generate(self, prompts, sampling_params=None, *, lora_request=None, use_tqdm=True):
        assert isinstance(sampling_params, FakeSamplingParams)
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            assert ids and all(isinstance(t, int) for t in ids)
        if lora_request is not None:
            assert self.kwargs["enable_lora"] is True, "a LoRARequest needs an engine built with enable_lora"
            assert isinstance(lora_request, FakeLoRARequest)
            with open(f"{lora_request.lora_path}/adapter_config.json", encoding="utf-8") as handle:
                rank = json.load(handle)["r"]
            assert rank <= self.kwargs["max_lora_rank"], "vLLM refuses an adapter above max_lora_rank"
            # vLLM caches adapters by id: one id must always mean one adapter, and one adapter one id
            known = self.ids_by_path.setdefault(lora_request.lora_path, lora_request.lora_int_id)
            assert known == lora_request.lora_int_id
            assert list(self.ids_by_path.values()).count(lora_request.lora_int_id) == 1
        FakeLLM.calls.append({"n": len(prompts), "params": sampling_params.kwargs, "lora": lora_request})
        outputs = []
        for i, _ in enumerate(prompts):
            capped = i % 2 == 1
            tokens = list(range(sampling_params.kwargs["max_tokens"] if capped else 3))
            outputs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(
                text=f"answer {i}", token_ids=tokens, finish_reason="length" if capped else "stop")]))
        return outputs


@pytest.fixture
def fake_vllm(monkeypatch):
    FakeLLM.built, FakeLLM.calls = [], []
    vllm = types.ModuleType("vllm")
    vllm.LLM, vllm.SamplingParams = FakeLLM, FakeSamplingParams
    lora = types.ModuleType("vllm.lora")
    request = types.ModuleType("vllm.lora.request")
    request.LoRARequest = FakeLoRARequest
    for name, module in (("vllm", vllm), ("vllm.lora", lora), ("vllm.lora.request", request)):
        monkeypatch.setitem(sys.modules, name, module)
    return FakeLLM


STUDENT = StudentConfig(model="builtin:tiny-llama")


def test_the_engine_is_built_for_lora_at_the_adapters_rank_and_tensor_parallel(fake_vllm):
    VLLMBackend(STUDENT, max_lora_rank=8, tensor_parallel_size=2)
    (kwargs,) = fake_vllm.built
    assert kwargs["enable_lora"] is True and kwargs["max_lora_rank"] >= 8 and kwargs["tensor_parallel_size"] == 2


def test_one_stable_lora_request_per_adapter_greedy_with_stop_tokens(fake_vllm, lora_adapter):
    first, second = lora_adapter("builtin:tiny-llama", 0), lora_adapter("builtin:tiny-llama", 1)
    backend = VLLMBackend(STUDENT, max_lora_rank=8)
    for path in (first, second, first, None, second):
        backend.generate_with_info(["What is 2 + 3?", "Name a prime."], max_new_tokens=16, adapter_path=path)
    loras = [call["lora"] for call in fake_vllm.calls]
    assert loras[3] is None  # the base model: no adapter attached
    assert loras[0].lora_int_id == loras[2].lora_int_id != loras[1].lora_int_id == loras[4].lora_int_id
    assert loras[0].lora_name != loras[1].lora_name and loras[0].lora_path == first
    expected_stops = stop_token_ids(load_tokenizer(STUDENT))
    for call in fake_vllm.calls:
        assert call["params"]["temperature"] == 0.0 and call["params"]["max_tokens"] == 16
        assert call["params"]["stop_token_ids"] == expected_stops and expected_stops


def test_finish_reasons_and_token_counts_reach_the_evaluation(fake_vllm):
    out = VLLMBackend(STUDENT).generate_with_info(["a", "b", "c"], max_new_tokens=5)
    assert [(g.text, g.finish_reason, g.generated_tokens) for g in out] == [
        ("answer 0", "stop", 3), ("answer 1", "length", 5), ("answer 2", "stop", 3)]


def test_an_adapter_above_the_engines_rank_is_refused_before_generating(fake_vllm, lora_adapter):
    backend = VLLMBackend(STUDENT, max_lora_rank=1)  # the fixture's adapters have rank 8
    with pytest.raises(ValueError, match="exceeds this engine's max_lora_rank"):
        backend.generate_with_info(["a"], max_new_tokens=4, adapter_path=lora_adapter("builtin:tiny-llama", 0))
    assert fake_vllm.calls == []
