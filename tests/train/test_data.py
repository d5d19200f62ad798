"""Data preparation: prompt masking, end-of-turn, truncation counts, exact global batches for any world size,
a seeded order that visits every example once per epoch, and packing that gives the same loss as padding."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from distill_ray.config import LoraConfig, StudentConfig, TrainingConfig
from distill_ray.train.core import Context, setup_model
from distill_ray.train.data import (
    IGNORE,
    EncodedExample,
    TokenizedDataset,
    encode_example,
    encode_examples,
    global_batch_indices,
    group_examples,
    make_micro_batches,
    micro_batches_per_rank,
    passes_per_rank,
    prepare_dataset,
    rank_share,
    rank_shares,
    truncation_stats,
    write_dataset,
)
from distill_ray.train.models import build_chat_prompt, load_tokenizer

LLAMA = StudentConfig(model="builtin:tiny-llama")
QWEN = StudentConfig(model="builtin:tiny-qwen3-moe")


@pytest.mark.parametrize("student", [LLAMA, QWEN], ids=["llama", "qwen3-moe"])
def test_only_response_and_end_of_turn_carry_loss(student, concise_examples):
    tok = load_tokenizer(student)
    example = concise_examples("code", 1)[0]
    enc = encode_example(tok, example, max_length=512)
    prompt_ids = tok(build_chat_prompt(tok, example["prompt"]), add_special_tokens=False)["input_ids"]
    assert list(enc.input_ids[:len(prompt_ids)]) == prompt_ids
    learned = [t for t in enc.targets if t != IGNORE]
    # exactly the response and the end-of-turn token, nothing of the prompt
    eot = "<|eot_id|>" if student is LLAMA else "<|im_end|>"
    assert tok.decode(learned) == example["response"] + eot
    assert len(learned) == len(enc.input_ids) - len(prompt_ids)
    # pre-shifted: the target at t is the token at t + 1
    for t, target in enumerate(enc.targets):
        if target != IGNORE:
            assert target == enc.input_ids[t + 1]
    assert enc.truncated_tokens == 0


def test_truncation_is_counted(concise_examples):
    tok = load_tokenizer(LLAMA)
    examples = concise_examples("math", 6)
    full = encode_examples(tok, examples, max_length=4096)
    lengths = [len(e.input_ids) for e in full]
    cut = sorted(lengths)[len(lengths) // 2] - 1  # at least half the examples are longer than this
    short = encode_examples(tok, examples, max_length=cut)
    stats = truncation_stats(short)
    assert stats["truncated_examples"] == sum(1 for n in lengths if n > cut) >= 3
    assert stats["truncated_tokens"] == sum(n - cut for n in lengths if n > cut)
    assert all(len(e.input_ids) <= cut for e in short)
    assert stats["tokens"] + stats["truncated_tokens"] == sum(lengths)


@pytest.mark.parametrize("world,sizes", [(1, [50]), (2, [25, 25]), (3, [17, 17, 16]), (7, [8, 7, 7, 7, 7, 7, 7])])
def test_global_batch_is_exact_for_any_world_size(world, sizes):
    n = 137
    for step in (0, 1, 5):
        batch = global_batch_indices(n, step, 50, seed=3)
        shares = [rank_share(batch, r, world) for r in range(world)]
        assert [len(s) for s in shares] == sizes
        assert [i for s in shares for i in s] == batch  # together exactly the global batch, nothing twice
        # every rank runs the same number of passes (filler passes where its share is smaller)
        per_rank = micro_batches_per_rank(50, world, 8)
        assert all(len(s) <= per_rank * 8 for s in shares)


def test_seeded_order_visits_each_example_once_per_epoch():
    n, g = 120, 50
    stream = [i for step in range(12) for i in global_batch_indices(n, step, g, seed=0)]  # 600 = 5 epochs
    assert Counter(stream) == Counter({i: 5 for i in range(n)})
    for epoch in range(5):
        assert sorted(stream[epoch * n:(epoch + 1) * n]) == list(range(n))
    assert global_batch_indices(n, 7, g, seed=0) == global_batch_indices(n, 7, g, seed=0)
    assert global_batch_indices(n, 7, g, seed=0) != global_batch_indices(n, 7, g, seed=1)


@pytest.mark.parametrize("student", [LLAMA, QWEN], ids=["llama", "qwen3-moe"])
def test_packing_gives_the_same_loss_and_gradients_as_padding(student, tmp_path, concise_examples):
    student = student.model_copy(update={"lora": LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"])})
    training = TrainingConfig(samples=50, global_batch=50, micro_batch=6)
    ctx = Context(0, 1, "cpu", None, lambda *a: None, lambda m: None, str(tmp_path))
    setup = setup_model(student, training, ctx, accumulation=1)
    # a non-zero adapter, so that the gradient check covers LoRA A and B
    with torch.no_grad():
        for p in setup.peft_model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    tok = load_tokenizer(student)
    enc = encode_examples(tok, concise_examples("math", 3) + concise_examples("code", 3), 512)
    results = []
    for packing in (True, False):
        mb = make_micro_batches(enc, 6, packing, tok.pad_token_id)[0]
        assert (mb.attention_mask is None) == packing
        setup.peft_model.zero_grad()
        loss = setup.engine(mb.input_ids, mb.position_ids, mb.targets, mb.attention_mask)
        loss.backward()
        grads = [p.grad.clone() for p in setup.peft_model.parameters() if p.requires_grad]
        results.append((float(loss), grads, mb.input_ids.numel()))
    (packed_loss, packed_grads, packed_numel), (padded_loss, padded_grads, padded_numel) = results
    assert packed_numel == sum(len(e.input_ids) for e in enc) < padded_numel  # no padding when packed
    assert packed_loss == pytest.approx(padded_loss, rel=1e-5)
    for a, b in zip(packed_grads, padded_grads):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


def _example(i: int, n: int) -> EncodedExample:
    return EncodedExample(str(i), tuple(range(n)), tuple([IGNORE] * (n // 2) + list(range(n - n // 2))), 0)


@pytest.mark.parametrize("world", [1, 2, 3, 4, 8])
def test_token_balanced_shares_keep_the_exact_global_batch(world):
    """Shares by tokens: together exactly the global batch, each once; token counts within one longest example of
    each other; far more even in tokens than shares by count on a long-tailed length mix."""
    import random

    rng = random.Random(world)
    lengths = [int(rng.lognormvariate(6.5, 0.8)) + 1 for _ in range(300)]
    for step in (0, 3, 7):
        batch = global_batch_indices(len(lengths), step, 50, seed=1)
        shares = rank_shares(batch, lengths, world, "tokens")
        assert sorted(i for s in shares for i in s) == sorted(batch)
        assert all(s == sorted(s, key=batch.index) for s in shares)  # each share keeps the batch's order
        tokens = [sum(lengths[i] for i in s) for s in shares]
        assert max(tokens) - min(tokens) <= max(lengths[i] for i in batch)
        by_count = [sum(lengths[i] for i in rank_share(batch, r, world)) for r in range(world)]
        assert max(tokens) - min(tokens) <= max(by_count) - min(by_count)
        assert rank_shares(batch, lengths, world, "examples") == [rank_share(batch, r, world) for r in range(world)]
        # every rank counts the same number of passes from lengths alone; no share needs more
        examples = [[_example(i, lengths[i]) for i in s] for s in shares]
        passes = passes_per_rank(examples, 8, 4096)
        for share in examples:
            groups = group_examples(share, 8, 4096)
            assert len(groups) <= passes
            assert sorted(e.id for g in groups for e in g) == sorted(e.id for e in share)


@pytest.mark.parametrize("label,lengths,budget,rows", [
    ("first fit decreasing fills rows", [600, 500, 400, 300, 200, 100], 1000, 3),  # in order: 5 rows
    ("an example over budget rides alone", [1500, 200, 200], 1000, 2),
    ("row count capped by micro_batch", [10] * 10, 1000, 3),  # micro_batch 4: 4 + 4 + 2
])
def test_token_budget_rows(label, lengths, budget, rows):
    groups = group_examples([_example(i, n) for i, n in enumerate(lengths)], 4, budget)
    assert len(groups) == rows, label
    assert all(len(g) <= 4 and (len(g) == 1 or sum(len(e.input_ids) for e in g) <= budget) for g in groups)


def test_dataset_file_round_trips_and_is_memory_mapped(tmp_path, concise_examples):
    examples = concise_examples("math", 20)
    path = prepare_dataset(examples, LLAMA, 64, str(tmp_path))
    assert prepare_dataset(examples, LLAMA, 64, str(tmp_path)) == path  # reused, not rewritten
    assert prepare_dataset(examples, LLAMA, 48, str(tmp_path)) != path  # max_length is part of the key
    want = encode_examples(load_tokenizer(LLAMA), examples, 64)
    data = TokenizedDataset(path)
    assert len(data) == 20 and [data[i] for i in range(20)] == want
    assert data.stats == truncation_stats(want) and data.stats["truncated_examples"] > 0
    assert list(data.lengths) == [len(e.input_ids) for e in want]
    assert list(data.loss_tokens) == [e.loss_tokens for e in want]
    assert not data._ids.flags.owndata  # a view of the mapped file, not a copy


def test_a_file_that_is_not_a_dataset_is_refused(tmp_path):
    import pyarrow as pa

    path = str(tmp_path / "other.arrow")
    with pa.OSFile(path, "wb") as sink, pa.ipc.new_file(sink, pa.schema([("x", pa.int32())])) as writer:
        writer.write_table(pa.table({"x": pa.array([1], pa.int32())}))
    with pytest.raises(ValueError, match="not a distill-ray tokenised dataset"):
        TokenizedDataset(path)
    write_dataset([_example(0, 4)], str(tmp_path / "ok.arrow"))
    assert TokenizedDataset(str(tmp_path / "ok.arrow"))[0] == _example(0, 4)
