"""The seed students' published shapes, built on the meta device (no memory), and how many layers a card holds."""

from __future__ import annotations

import pytest
import torch

from distill_ray.train.reference_shapes import build_reference_model, choose_layers, matmul_parameters

GIB = 2**30


def test_matmul_parameters_of_the_published_shapes():
    """Llama-3.1-8B: ~7.5B matmul weights (8.03B with the input embedding); Qwen3-30B-A3B ~30.2B of which ~3.0B are
    active per token (30.5B / 3.3B with the embedding), the figures their model cards give."""
    llama = build_reference_model("llama-3.1-8b", device="meta", dtype=torch.bfloat16)
    total, active = matmul_parameters(llama)
    embed = llama.get_input_embeddings().weight.numel()
    assert total == active and 8.0e9 < total + embed < 8.1e9
    assert llama.config.num_hidden_layers == 32 and llama.config.rope_scaling["rope_type"] == "llama3"
    qwen = build_reference_model("qwen3-30b-a3b", device="meta", dtype=torch.bfloat16)
    total, active = matmul_parameters(qwen)
    embed = qwen.get_input_embeddings().weight.numel()
    assert 30.3e9 < total + embed < 30.7e9
    assert 3.2e9 < active + embed < 3.45e9
    assert not any(p.requires_grad for p in qwen.parameters())


def test_auto_layers_keep_everything_that_fits_the_card():
    # an H200 (about 139 GiB) holds both whole; an H100 (about 79 GiB) holds the 8B whole but not the 61 GB MoE
    assert choose_layers("llama-3.1-8b", "auto", "cuda", card_bytes=79 * GIB) == (32, "all")
    assert choose_layers("qwen3-30b-a3b", "auto", "cuda", card_bytes=139 * GIB) == (48, "all")
    layers, why = choose_layers("qwen3-30b-a3b", "auto", "cuda", card_bytes=79 * GIB)
    assert 30 <= layers < 48 and why.startswith(f"{layers} of 48")
    weights = 2 * sum(p.numel() for p in build_reference_model(
        "qwen3-30b-a3b", device="meta", dtype=torch.bfloat16, layers=layers).parameters())
    assert weights <= 0.6 * 79 * GIB  # the rule it states holds for the count it chose
    assert choose_layers("qwen3-30b-a3b", "auto", "cpu") == (48, "all")


def test_requested_layers_are_checked():
    assert choose_layers("qwen3-30b-a3b", "12", "cuda", card_bytes=79 * GIB) == (12, "requested")
    with pytest.raises(ValueError, match="outside 1..32"):
        choose_layers("llama-3.1-8b", "33", "cpu")
    with pytest.raises(ValueError, match="unknown reference shape"):
        build_reference_model("llama-70b", device="meta", dtype=torch.bfloat16)
