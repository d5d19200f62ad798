"""The tiny students and their locally built tokenizer: exact round trips, single-token digits and think tags,
each family's chat format, and base weights that are identical however often (and wherever) they are built."""

from __future__ import annotations

import os

import pytest
import torch

from distill_ray.config import StudentConfig
from distill_ray.train import build_chat_prompt, end_of_turn_token, load_student
from distill_ray.train.models import builtin_model_dir, load_tokenizer

LLAMA = StudentConfig(model="builtin:tiny-llama")
QWEN = StudentConfig(model="builtin:tiny-qwen3-moe")

TEXTS = [
    "def convert(x):\n    return x - 9\n",
    "class A:\n\tdef f(self):\n\t\treturn  1  \n\n\n",
    "<think>Kate has 3 shells. 3 + 5 = 8.</think>\n\nThe answer is \\boxed{8}.",
    "  leading spaces, trailing spaces   \r\nand CRLF, unicode: é ∑ 你好 🙂",
    "```python\ndef f(x):\n    return x * 7\n```",
]


@pytest.mark.parametrize("student", [LLAMA, QWEN], ids=["llama", "qwen3-moe"])
def test_tokenizer_round_trips_and_splits_digits(student):
    tok = load_tokenizer(student)
    for text in TEXTS:
        ids = tok(text, add_special_tokens=False)["input_ids"]
        assert tok.decode(ids) == text
    ids = tok("12345 + 607", add_special_tokens=False)["input_ids"]
    digits = [t for t in tok.convert_ids_to_tokens(ids) if any(c.isdigit() for c in t)]
    assert digits == ["1", "2", "3", "4", "5", "6", "0", "7"]
    for tag in ("<think>", "</think>"):
        assert len(tok(tag, add_special_tokens=False)["input_ids"]) == 1
    # the think tags survive skip_special_tokens (they are content, as in Qwen3), the turn markers do not
    eot = end_of_turn_token(tok)
    ids = tok("<think>a</think>b" + eot, add_special_tokens=False)["input_ids"]
    assert tok.decode(ids, skip_special_tokens=True) == "<think>a</think>b"


def test_chat_formats_follow_each_family():
    llama_tok, qwen_tok = load_tokenizer(LLAMA), load_tokenizer(QWEN)
    assert build_chat_prompt(llama_tok, "Hi?") == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert build_chat_prompt(qwen_tok, "Hi?") == "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    assert end_of_turn_token(llama_tok) == "<|eot_id|>" and end_of_turn_token(qwen_tok) == "<|im_end|>"
    assert llama_tok.eos_token == "<|eot_id|>" and qwen_tok.eos_token == "<|im_end|>"


def test_architectures_and_sizes():
    llama, _ = load_student(LLAMA)
    qwen, _ = load_student(QWEN)
    assert type(llama).__name__ == "LlamaForCausalLM" and type(qwen).__name__ == "Qwen3MoeForCausalLM"
    assert qwen.config.num_experts == 4 and qwen.config.num_experts_per_tok == 2
    assert qwen.model.layers[0].mlp.experts.gate_up_proj.shape[0] == 4
    for model in (llama, qwen):
        assert 2 <= model.config.num_hidden_layers <= 4 and 64 <= model.config.hidden_size <= 256
        assert model.generation_config.eos_token_id == model.config.eos_token_id


def test_base_weights_identical_across_builds(tmp_path):
    """A second build from scratch (another cache folder, as on another node) gives the same tokenizer and weights."""
    first, _ = load_student(QWEN)
    first_tok = load_tokenizer(QWEN)
    old = os.environ["DISTILL_RAY_CACHE"]
    os.environ["DISTILL_RAY_CACHE"] = str(tmp_path)
    try:
        assert builtin_model_dir(QWEN.model).startswith(str(tmp_path))
        second, _ = load_student(QWEN)
        second_tok = load_tokenizer(QWEN)
    finally:
        os.environ["DISTILL_RAY_CACHE"] = old
    assert first_tok.get_vocab() == second_tok.get_vocab()
    a, b = first.state_dict(), second.state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
