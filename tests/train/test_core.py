"""The single-process training core: the loss falls, saved adapters reproduce the trained model's logits, the
trainable-parameter check catches an adapter that is not applied, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file

from distill_ray.config import LoraConfig, StudentConfig, TrainingConfig
from distill_ray.files import InputError
from distill_ray.train import core, load_student, train_student
from distill_ray.train.core import AdapterNotAppliedError, Context, InjectedFault, setup_model, train_local
from distill_ray.train.models import load_base_model

ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def _logits(model, tokenizer, texts):
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    with torch.no_grad():
        return model(**batch).logits


def test_loss_falls_and_saved_adapter_reproduces_logits(tmp_path, concise_examples):
    student = StudentConfig(model="builtin:tiny-llama", lora=LoraConfig(r=16, alpha=32, target_modules=ALL_LINEAR))
    training = TrainingConfig(samples=300, global_batch=10, micro_batch=5, learning_rate=5e-3, checkpoint_every=10,
                              warmup_ratio=0.1, max_length=256)
    kept = {}
    summary = train_local(concise_examples("math", 100), student, training, str(tmp_path),
                          on_finish=lambda setup: kept.update(model=setup.peft_model))
    curve = [loss for _, loss in summary["loss_curve"]]
    assert len(curve) == 30 and summary["examples"] == 100
    assert curve[0] > 6.0 and summary["final_loss"] < 0.25 * curve[0]
    assert [c["step"] for c in summary["checkpoints"]] == [10, 20, 30]
    assert [c["samples"] for c in summary["checkpoints"]] == [100, 200, 300]
    # trainable count: r * (in + out) for every targeted projection of both layers
    per_layer = 16 * ((128 + 128) + (128 + 64) + (128 + 64) + (128 + 128) + 2 * (128 + 256) + (256 + 128))
    assert summary["trainable_parameters"] == 2 * per_layer

    adapter = summary["checkpoints"][-1]["path"]
    config = json.load(open(os.path.join(adapter, "adapter_config.json")))
    assert config["r"] == 16 and sorted(config["target_modules"]) == sorted(ALL_LINEAR)
    tensors = load_file(os.path.join(adapter, "adapter_model.safetensors"))
    assert len(tensors) == 2 * 7 * 2 and all(k.startswith("base_model.model.") for k in tensors)  # vLLM's naming
    assert sum(t.numel() for t in tensors.values()) == summary["trainable_parameters"]

    trained = kept["model"].eval()
    fresh, tokenizer = load_student(student, adapter)
    base, _ = load_student(student)
    texts = [concise_examples("math", 2, seed=9)[i]["prompt"] for i in range(2)]
    tokenizer.padding_side = "right"
    want = _logits(trained, tokenizer, texts)
    torch.testing.assert_close(_logits(fresh, tokenizer, texts), want, rtol=1e-5, atol=1e-5)
    assert (_logits(base, tokenizer, texts) - want).abs().max() > 1.0  # the adapter really changes the model


def test_unapplied_adapter_is_an_error(tmp_path, monkeypatch):
    student = StudentConfig(model="builtin:tiny-llama", lora=LoraConfig(r=4, alpha=8, target_modules=["q_proj"]))
    training = TrainingConfig(samples=10, global_batch=10)
    ctx = Context(0, 1, "cpu", None, lambda *a: None, lambda m: None, str(tmp_path))
    assert setup_model(student, training, ctx, 1).trainable == 2 * 4 * (128 + 128)
    # a config whose targets the model lacks: refused before PEFT silently wraps only part of what was asked
    bad = student.model_copy(update={"lora": LoraConfig(r=4, alpha=8, target_modules=["q_proj", "wq"])})
    with pytest.raises(AdapterNotAppliedError, match=r"target_modules \['wq'\] match no linear layer"):
        setup_model(bad, training, ctx, 1)
    # the dense MLP's names on the fused-expert MoE: the error says how its MLP is adapted
    moe = StudentConfig(model="builtin:tiny-qwen3-moe",
                        lora=LoraConfig(r=4, alpha=8, target_modules=["q_proj", "gate_proj", "up_proj", "down_proj"]))
    with pytest.raises(AdapterNotAppliedError, match="fused tensors: adapt them with expert_lora: true"):
        setup_model(moe, training, ctx, 1)
    # PEFT training a different count than the config implies is caught too
    monkeypatch.setattr(core, "expected_trainable_parameters", lambda *a: 2 * 4 * (128 + 128) + 4 * (128 + 128))
    with pytest.raises(AdapterNotAppliedError, match="got 2048, the config implies 3072"):
        setup_model(student, training, ctx, 1)


def test_expert_lora_adapts_fused_experts_and_leaves_router_frozen(tmp_path):
    student = StudentConfig(model="builtin:tiny-qwen3-moe",
                            lora=LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"], expert_lora=True))
    training = TrainingConfig(samples=10, global_batch=10)
    ctx = Context(0, 1, "cpu", None, lambda *a: None, lambda m: None, str(tmp_path))
    setup = setup_model(student, training, ctx, 1)
    base = load_base_model(student)
    cfg = base.config
    attention = 4 * ((128 + 4 * 32) + (128 + 2 * 32))
    experts = 4 * cfg.num_experts * ((2 * cfg.moe_intermediate_size + 128) + (128 + cfg.moe_intermediate_size))
    assert setup.trainable == cfg.num_hidden_layers * (attention + experts)
    names = [n for n, p in setup.peft_model.named_parameters() if p.requires_grad]
    assert any("experts" in n for n in names) and not any(".gate." in n or n.endswith("gate.weight") for n in names)


def test_resume_after_a_fault_equals_an_uninterrupted_run(tmp_path, concise_examples):
    # dropout > 0 so that the restored RNG matters; 7 steps over 45 examples crosses an epoch boundary
    student = StudentConfig(model="builtin:tiny-llama",
                            lora=LoraConfig(r=8, alpha=16, dropout=0.1, target_modules=["q_proj", "v_proj", "up_proj"]))
    training = TrainingConfig(samples=70, global_batch=10, micro_batch=4, learning_rate=3e-3, checkpoint_every=3,
                              max_length=256, seed=5)
    examples = concise_examples("code", 45)
    straight = train_student(examples, student, training, str(tmp_path / "a"), use_ray=False)
    with pytest.raises(InjectedFault):
        train_local(examples, student, training, str(tmp_path / "b"),
                    fault={"rank": 0, "step": 4, "marker": str(tmp_path / "marker"), "mode": "raise"})
    resumed = train_student(examples, student, training, str(tmp_path / "b"), use_ray=False, resume=True)
    assert resumed["resumed_from"] == 3
    assert [s for s, _ in resumed["loss_curve"]] == list(range(1, 8))
    for (_, a), (_, b) in zip(straight["loss_curve"], resumed["loss_curve"]):
        assert a == pytest.approx(b, rel=1e-6)
    assert resumed["data_digest"] == straight["data_digest"] and resumed["examples_consumed"] == 70
    assert [c["step"] for c in resumed["checkpoints"]] == [3, 6, 7]
    # meta.json and the COMPLETE marker go through files.write_json/write_text: no temporary file is left behind
    step_dir = os.path.dirname(straight["checkpoints"][-1]["path"])
    assert open(os.path.join(step_dir, core.COMPLETE)).read() == "7"
    assert [n for _, _, names in os.walk(tmp_path) for n in names if ".tmp-" in n] == []
    a = load_file(os.path.join(straight["checkpoints"][-1]["path"], "adapter_model.safetensors"))
    b = load_file(os.path.join(resumed["checkpoints"][-1]["path"], "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_a_cut_short_meta_json_is_an_input_error_naming_the_file(tmp_path):
    step_dir = tmp_path / "step-000003"
    (step_dir / "state").mkdir(parents=True)
    (step_dir / "state" / "meta.json").write_text('{"step": 3,')
    with pytest.raises(InputError, match=r"step-000003/state/meta\.json:1: not valid JSON"):
        core.checkpoint_info(str(step_dir))
