"""Adapter parity: catch a checkpoint whose LoRA was silently dropped (a known failure of both PEFT and vLLM).

    from distill_ray.evaluate.parity import check_adapter_keys, check_not_base
    check_adapter_keys(peft_model, "runs/x/ckpt/step-100")     # raises AdapterParityError on missing/unexpected keys
    check_not_base("runs/x/ckpt/step-100", rows, "runs/x/base/student/responses.jsonl")

Two checks, each raising `AdapterParityError` with a message naming the checkpoint:
- the adapter file's tensors must be exactly the LoRA weights the loaded PEFT model expects (a renamed key is silently
  ignored by PEFT, which then serves the base model: an "unexpected" key here; an expected weight absent from the
  file is a "missing" key);
- greedy responses equal to the base model's on at least `PARITY_THRESHOLD` of the items both evaluated (matched by
  benchmark and problem id) mean the adapter changed nothing measurable.

Not guaranteed: catching an adapter that loads but was trained to (near) zero; a tiny evaluation (under
`MIN_SHARED_ITEMS` shared items) is not judged by the response check.
"""

from __future__ import annotations

import os
from typing import Any

from distill_ray.files import read_jsonl

PARITY_THRESHOLD = 0.98
MIN_SHARED_ITEMS = 5


class AdapterParityError(RuntimeError):
    """A checkpoint that evaluates as the base model (or whose adapter file does not fit the model)."""


def _read_rows(source: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if not isinstance(source, str):
        return list(source)
    return read_jsonl(source)


def check_not_base(adapter_path: str, rows: list[dict[str, Any]], base: str | list[dict[str, Any]]) -> float:
    """The share of shared items whose response equals the base model's; raises at or above the threshold."""
    if isinstance(base, str) and not os.path.exists(base):
        return 0.0
    base_by_key = {(r["benchmark"], r["problem_id"]): r["response"] for r in _read_rows(base)}
    shared = [(r["response"], base_by_key[(r["benchmark"], r["problem_id"])]) for r in rows
              if (r["benchmark"], r["problem_id"]) in base_by_key]
    if len(shared) < MIN_SHARED_ITEMS:
        return 0.0
    share = sum(a == b for a, b in shared) / len(shared)
    if share >= PARITY_THRESHOLD:
        raise AdapterParityError(
            f"checkpoint {adapter_path}: greedy responses equal the base model's on {share:.1%} of {len(shared)} "
            f"items (threshold {PARITY_THRESHOLD:.0%}); the adapter was most likely not applied"
        )
    return share


def adapter_file_keys(adapter_path: str) -> set[str]:
    """Tensor names stored in a PEFT adapter folder (safetensors, else the .bin)."""
    safetensors = os.path.join(adapter_path, "adapter_model.safetensors")
    if os.path.exists(safetensors):
        from safetensors import safe_open

        with safe_open(safetensors, framework="pt") as handle:
            return set(handle.keys())
    import torch

    return set(torch.load(os.path.join(adapter_path, "adapter_model.bin"), map_location="cpu", weights_only=True))


def check_adapter_keys(peft_model: Any, adapter_path: str, adapter_name: str = "default") -> None:
    """Raise when the file's tensors and the loaded model's LoRA weights differ (names as PEFT saves them)."""
    from peft import get_peft_model_state_dict

    expected = set(get_peft_model_state_dict(peft_model, adapter_name=adapter_name))
    stored = adapter_file_keys(adapter_path)
    missing, unexpected = sorted(expected - stored), sorted(stored - expected)
    if missing or unexpected:
        raise AdapterParityError(
            f"checkpoint {adapter_path}: adapter file does not fit the model: {len(missing)} missing key(s) "
            f"{missing[:3]}, {len(unexpected)} unexpected key(s) {unexpected[:3]}; PEFT would ignore them and serve "
            "the base model"
        )
