"""TeacherSpec: built from TeacherConfig, frozen, pickles (it crosses Ray boundaries), and keys builtin by identity."""

from __future__ import annotations

import dataclasses
import pickle

import pytest

from distill_ray.config import TeacherConfig
from distill_ray.teacher.spec import BUILTIN_CACHE_URL, teacher_spec


def test_spec_carries_every_config_field_and_pickles() -> None:
    config = TeacherConfig(provider="openrouter", base_url="https://openrouter.ai/api/v1", model="m",
                           sampling={"max_tokens": 64}, price={"input_per_mtok": 1.0, "output_per_mtok": 2.0})
    spec = teacher_spec("t", config)
    assert {f.name for f in dataclasses.fields(spec)} == set(config.model_dump()) | {
        "name", "cache_url", "spent_before_usd"}
    assert spec.cache_url == config.base_url and spec.sampling == config.sampling.model_dump()
    assert pickle.loads(pickle.dumps(spec)) == spec
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.spent_before_usd = 1.0  # type: ignore[misc]
    assert dataclasses.replace(spec, spent_before_usd=1.5).spent_before_usd == 1.5 and spec.spent_before_usd == 0.0


def test_builtin_keys_by_identity_and_a_missing_base_url_is_refused() -> None:
    builtin = TeacherConfig(provider="builtin", model="m", style="concise", correct_rate=1.0)
    with pytest.raises(ValueError, match="'b': no base_url"):
        teacher_spec("b", builtin)
    spec = teacher_spec("b", builtin.model_copy(update={"base_url": "http://127.0.0.1:5555/v1"}))
    assert spec.cache_url == BUILTIN_CACHE_URL
