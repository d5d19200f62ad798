"""Both evaluation engines offer the one `generate` / `generate_with_info` signature of backends.GenerationEngine."""

from __future__ import annotations

import inspect

import pytest

from distill_ray.evaluate.actors import EvalEngine
from distill_ray.evaluate.backends import GenerationEngine, VLLMBackend


@pytest.mark.parametrize("engine_class", [EvalEngine, VLLMBackend])
@pytest.mark.parametrize("method", ["generate", "generate_with_info"])
def test_engines_match_the_protocol_signature(engine_class: type, method: str) -> None:
    want = inspect.signature(getattr(GenerationEngine, method))
    got = inspect.signature(getattr(engine_class, method))
    assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
        (p.name, p.kind, p.default) for p in want.parameters.values()]
    assert issubclass(engine_class, GenerationEngine)
