"""The chunked loss equals the unchunked one (value and gradients, of the adapter and of the hidden states), on both
tiny architectures and for chunk sizes that do and do not divide the token count; liger's fused kernel (GPU only)
equals it too. Tolerances: fp32 on CPU, rel 1e-6 for the loss and rtol 1e-4 / atol 1e-6 for gradients (only the
summation order over chunks differs); bf16 liger on GPU against the fp32 chunked loss, rel 2e-2."""

from __future__ import annotations

import pytest
import torch

from distill_ray.config import LoraConfig, StudentConfig, TrainingConfig
from distill_ray.train.core import Context, chunked_token_loss, setup_model
from distill_ray.train.data import encode_examples, make_micro_batches
from distill_ray.train.models import load_tokenizer

STUDENTS = [StudentConfig(model="builtin:tiny-llama"), StudentConfig(model="builtin:tiny-qwen3-moe")]


def _loss_and_grads(setup, mb):
    setup.peft_model.zero_grad()
    loss = setup.engine(mb.input_ids, mb.position_ids, mb.targets, mb.attention_mask)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in setup.peft_model.parameters() if p.requires_grad]


@pytest.mark.parametrize("student", STUDENTS, ids=["llama", "qwen3-moe"])
def test_chunked_loss_equals_the_full_logits_loss(student, tmp_path, concise_examples):
    student = student.model_copy(update={"lora": LoraConfig(r=4, alpha=8, target_modules=["q_proj", "v_proj"])})
    ctx = Context(0, 1, "cpu", None, lambda *a: None, lambda m: None, str(tmp_path))
    setup = setup_model(student, TrainingConfig(samples=8, global_batch=8), ctx, accumulation=1)
    with torch.no_grad():  # a non-zero adapter, so that LoRA A and B both get gradients
        for p in setup.peft_model.parameters():
            if p.requires_grad:
                p.add_(0.05 * torch.randn_like(p))
    tok = load_tokenizer(student)
    mb = make_micro_batches(encode_examples(tok, concise_examples("math", 12), 256), 12, True, tok.pad_token_id)[0]
    assert mb.loss_tokens > 200
    setup.engine.chunk_tokens = 10**9
    want_loss, want_grads = _loss_and_grads(setup, mb)
    for chunk in (mb.loss_tokens // 3, 64, 17):  # 3 chunks, several, and one that leaves a ragged last chunk
        setup.engine.chunk_tokens = chunk
        loss, grads = _loss_and_grads(setup, mb)
        assert float(loss) == pytest.approx(float(want_loss), rel=1e-6), chunk
        for a, b in zip(grads, want_grads):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # fp32 sums in another order: ~2e-6 seen on the MoE


def test_chunked_loss_gradient_of_the_hidden_states_and_a_trainable_head():
    torch.manual_seed(0)
    head = torch.nn.Linear(32, 50, bias=False)
    hidden = torch.randn(103, 32, requires_grad=True)
    labels = torch.randint(0, 50, (103,))
    want = torch.nn.functional.cross_entropy(head(hidden), labels, reduction="sum")
    gh, gw = torch.autograd.grad(want, (hidden, head.weight))
    got = chunked_token_loss(hidden, labels, head, chunk=10)
    ch, cw = torch.autograd.grad(got, (hidden, head.weight))
    assert float(got) == pytest.approx(float(want), rel=1e-6)
    torch.testing.assert_close(ch, gh, rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(cw, gw, rtol=1e-5, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_liger_fused_loss_equals_the_chunked_loss():
    pytest.importorskip("liger_kernel")
    from distill_ray.train.core import liger_token_loss

    torch.manual_seed(0)
    head = torch.nn.Linear(256, 4096, bias=False, device="cuda", dtype=torch.bfloat16).requires_grad_(False)
    hidden = torch.randn(2000, 256, device="cuda", dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, 4096, (2000,), device="cuda")
    want = chunked_token_loss(hidden, labels, head, chunk=512)
    (want_grad,) = torch.autograd.grad(want, hidden)
    got = liger_token_loss(hidden, labels, head)
    (got_grad,) = torch.autograd.grad(got, hidden)
    assert float(got) == pytest.approx(float(want), rel=2e-2)
    torch.testing.assert_close(got_grad.float(), want_grad.float(), rtol=5e-2, atol=1e-3)


def test_liger_on_cpu_is_a_clear_error(tmp_path):
    ctx = Context(0, 1, "cpu", None, lambda *a: None, lambda m: None, str(tmp_path))
    training = TrainingConfig(samples=8, global_batch=8, loss_kernel="liger")
    with pytest.raises(ValueError, match="liger needs a CUDA device"):
        setup_model(StudentConfig(model="builtin:tiny-llama"), training, ctx, accumulation=1)
