"""The transformers evaluation backend against a plain one-prompt-at-a-time `model.generate()`.

Exact where exactness is guaranteed (one-row batches, an unmerged adapter: the same forward passes); elsewhere
(batches of mixed lengths, a merged adapter) every response must match too, or else first differ at a step where the
reference's two best logits were nearly tied - floating-point reduction order is the only permitted cause.
"""

from __future__ import annotations

import pytest
import torch

from distill_ray.config import StudentConfig
from distill_ray.evaluate.backends import TransformersBackend, plan_batches, stop_token_ids
from distill_ray.evaluate.vllm_args import adapter_rank, max_lora_rank_for

STUDENTS = ["builtin:tiny-llama", "builtin:tiny-qwen3-moe"]
NEAR_TIE = 1e-3  # logits of these models span several units; float32 reordering moves them by ~1e-6
MAX_NEW = 24


@pytest.mark.parametrize(("lengths", "cap", "budget"), [
    ([5, 50, 7, 400, 12, 9, 300, 8], 3, None),
    ([5, 50, 7, 400, 12, 9, 300, 8], 8, 1000),
    ([10] * 10, 4, 10_000),
    ([2000, 10, 10], 16, 500),  # one prompt alone over budget still gets its own batch
    ([], 4, None),
])
def test_plan_batches_covers_every_prompt_within_limits(lengths, cap, budget):
    batches = plan_batches(lengths, max_new_tokens=20, max_batch_size=cap, max_batch_tokens=budget)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) <= cap
        assert [lengths[i] for i in batch] == sorted((lengths[i] for i in batch), reverse=True)
        if budget is not None and len(batch) > 1:
            assert len(batch) * (max(lengths[i] for i in batch) + 20) <= budget
    flat = [lengths[i] for b in batches for i in b]
    assert flat == sorted(lengths, reverse=True)  # longest first: the memory peak comes at once


def test_token_budget_gives_short_prompts_bigger_batches():
    lengths = [400] * 4 + [20] * 12
    batches = plan_batches(lengths, max_new_tokens=40, max_batch_size=64, max_batch_tokens=1000)
    assert [len(b) for b in batches] == [2, 2, 12]


@pytest.mark.parametrize("model", STUDENTS)
def test_one_row_batches_are_identical_to_plain_generate(model, tools):
    backend = TransformersBackend(StudentConfig(model=model), batch_size=1)
    messages = tools.mixed_messages(8, seed=1)
    ids = backend.encode(messages)
    want = tools.reference_generate(backend.model, ids, max_new_tokens=MAX_NEW, stop_ids=backend.stop_ids,
                                    pad_id=backend.tokenizer.pad_token_id)
    assert backend.generate_ids(ids, max_new_tokens=MAX_NEW) == want
    assert backend.generate(messages, max_new_tokens=MAX_NEW) == [
        backend.tokenizer.decode(w, skip_special_tokens=True) for w in want]


@pytest.mark.parametrize("model", STUDENTS)
def test_batched_decoding_with_early_stops_matches_one_at_a_time(model, tools):
    backend = TransformersBackend(StudentConfig(model=model), batch_size=6)
    messages = tools.mixed_messages(18, seed=2)
    ids = backend.encode(messages)
    # a budget that holds four of the longest rows: long batches are cut short, short prompts still fill six rows
    backend.max_batch_tokens = budget = 4 * (max(len(i) for i in ids) + MAX_NEW)
    # Random students never emit an end-of-turn token, so promote tokens they do write to stop tokens (at various
    # depths): rows then finish at different steps and leave their batches early, which is the path to test.
    free = backend.generate_ids(ids[:6], max_new_tokens=MAX_NEW)
    backend.stop_ids = sorted(set(backend.stop_ids) | {free[i][3 + 4 * i] for i in range(5)})
    want = tools.reference_generate(backend.model, ids, max_new_tokens=MAX_NEW, stop_ids=backend.stop_ids,
                                    pad_id=backend.tokenizer.pad_token_id)
    got = backend.generate_ids(ids, max_new_tokens=MAX_NEW)

    lengths = [len(w) for w in want]
    assert len(set(lengths)) >= 3 and min(lengths) < MAX_NEW  # rows really stopped at different steps
    batches = plan_batches([len(i) for i in ids], max_new_tokens=MAX_NEW, max_batch_size=6, max_batch_tokens=budget)
    assert len(batches) >= 3 and max(len(b) for b in batches) == 6 and min(len(b) for b in batches) < 6
    assert len(got) == len(ids)
    diverged = tools.divergences(backend.model, ids, got, want)
    assert all(margin < NEAR_TIE for _, _, margin in diverged), diverged
    # Measured on x86 fp32 for both students: every response identical (no near-tie was even hit).
    assert len(diverged) <= len(ids) // 10


@pytest.mark.parametrize("model", STUDENTS)
def test_lora_adapter_unmerged_is_exact_and_merged_differs_only_at_near_ties(model, tools, lora_adapter):
    from peft import PeftModel

    from distill_ray.train.models import load_base_model

    path = lora_adapter(model)
    student = StudentConfig(model=model)
    messages = tools.mixed_messages(10, seed=3)
    peft_model = PeftModel.from_pretrained(load_base_model(student), path, is_trainable=False).eval()

    exact = TransformersBackend(student, batch_size=1, merge_adapter=False)
    exact.load_adapter(path)
    ids = exact.encode(messages)
    want = tools.reference_generate(peft_model, ids, max_new_tokens=MAX_NEW, stop_ids=exact.stop_ids,
                                    pad_id=exact.tokenizer.pad_token_id)
    assert exact.generate_ids(ids, max_new_tokens=MAX_NEW) == want

    merged = TransformersBackend(student, batch_size=4)
    merged.load_adapter(path)
    assert not any("lora" in name for name, _ in merged.model.named_parameters())  # really merged away
    got = merged.generate_ids(ids, max_new_tokens=MAX_NEW)
    diverged = tools.divergences(peft_model, ids, got, want)
    assert all(margin < NEAR_TIE for _, _, margin in diverged), diverged

    # The adapter matters (otherwise the comparisons above prove nothing), and the base comes back bit for bit.
    base_out = tools.reference_generate(load_base_model(student), ids, max_new_tokens=MAX_NEW,
                                        stop_ids=exact.stop_ids, pad_id=exact.tokenizer.pad_token_id)
    assert sum(w != b for w, b in zip(want, base_out, strict=True)) >= len(ids) // 2
    merged.load_adapter(None)
    fresh = load_base_model(student).state_dict()
    restored = merged.model.state_dict()
    assert restored.keys() == fresh.keys()
    assert all(torch.equal(restored[k], fresh[k]) for k in fresh)


def test_switching_adapters_on_one_loaded_base(tools, lora_adapter):
    student = StudentConfig(model="builtin:tiny-llama")
    first, second = lora_adapter(student.model, 0), lora_adapter(student.model, 1)
    messages = tools.mixed_messages(6, seed=4)
    engine = TransformersBackend(student, batch_size=6)
    base = engine.generate(messages, max_new_tokens=16)
    results = {}
    for path in (first, second, None, second):
        results.setdefault(path, []).append(engine.generate(messages, max_new_tokens=16, adapter_path=path))
    for path in (first, second):
        fresh = TransformersBackend(student, batch_size=6)
        assert results[path][0] == fresh.generate(messages, max_new_tokens=16, adapter_path=path)
    assert results[second][0] == results[second][1]
    assert results[None][0] == base
    assert results[first][0] != base and results[second][0] != results[first][0]


def test_empty_prompt_list_and_stop_tokens(tools):
    backend = TransformersBackend(StudentConfig(model="builtin:tiny-qwen3-moe"))
    assert backend.generate([], max_new_tokens=8) == []
    vocab = backend.tokenizer.get_vocab()
    assert stop_token_ids(backend.tokenizer) == sorted({vocab["<|im_end|>"], vocab["<|endoftext|>"]})


def test_the_transformers_engine_fingerprint_names_its_versions_dtype_and_device():
    from importlib.metadata import version

    environment = TransformersBackend(StudentConfig(model="builtin:tiny-llama")).fingerprint()
    assert environment["backend"] == "transformers"
    assert environment["engine"] == f"transformers {version('transformers')}"
    assert environment["torch"] == version("torch") and environment["peft"] == version("peft")
    assert environment["dtype"] == "float32" and environment["device"] == "cpu"
    assert environment["max_lora_rank"] is None and environment["tensor_parallel"] == 1


def test_adapter_rank_and_vllm_rank_rounding(lora_adapter):
    assert adapter_rank(lora_adapter("builtin:tiny-llama")) == 8
    assert [max_lora_rank_for(r) for r in (1, 8, 9, 32, 33, 300)] == [1, 8, 16, 32, 64, 320]
    with pytest.raises(ValueError, match="exceeds"):
        max_lora_rank_for(1024)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_vllm_backend_matches_transformers_on_gpu(tools, lora_adapter):
    pytest.importorskip("vllm")
    from distill_ray.evaluate.backends import VLLMBackend

    student = StudentConfig(model="builtin:tiny-llama", dtype="float32")
    path = lora_adapter(student.model)
    messages = tools.mixed_messages(8, seed=5)
    vllm_out = VLLMBackend(student, max_lora_rank=8, gpu_memory_utilization=0.3).generate(
        messages, max_new_tokens=16, adapter_path=path)
    hf_out = TransformersBackend(student, device="cuda").generate(messages, max_new_tokens=16, adapter_path=path)
    assert len(vllm_out) == len(messages)
    assert sum(a == b for a, b in zip(vllm_out, hf_out, strict=True)) >= len(messages) // 2
