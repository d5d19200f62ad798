"""EvalEngine: one loaded engine evaluates the base model and checkpoint after checkpoint, as a plain object and as a
Ray actor, with the same responses as a freshly built backend per checkpoint."""

from __future__ import annotations

import pytest

from distill_ray.config import BenchmarkConfig, EvaluationConfig, StudentConfig
from distill_ray.evaluate.actors import EvalEngine, remote_eval_engine
from distill_ray.evaluate.backends import TransformersBackend

STUDENT = StudentConfig(model="builtin:tiny-qwen3-moe")
MAX_NEW = 12


@pytest.fixture(scope="module")
def checkpoints(lora_adapter):
    return [lora_adapter(STUDENT.model, 0), lora_adapter(STUDENT.model, 1)]


@pytest.fixture(scope="module")
def expected(checkpoints, tools):
    """Responses from a fresh backend per checkpoint (base first): what a one-shot evaluation would produce."""
    messages = tools.mixed_messages(6, seed=7)
    return messages, {path: TransformersBackend(STUDENT, batch_size=4).generate(messages, max_new_tokens=MAX_NEW,
                                                                                 adapter_path=path)
                      for path in [None, *checkpoints]}


def test_engine_evaluates_checkpoints_in_turn_without_reloading(checkpoints, expected):
    messages, want = expected
    engine = EvalEngine(STUDENT, batch_size=4)
    base_model = engine.backend.model
    for path in [None, *checkpoints, None, checkpoints[0]]:
        assert engine.generate(messages, max_new_tokens=MAX_NEW, adapter_path=path) == want[path]
        assert engine.adapter() == path
        assert engine.backend.model is base_model  # merged in place: the loaded base model is reused
    assert len({tuple(r) for r in want.values()}) == 3  # the three models really answer differently


def test_engine_as_ray_actor(checkpoints, expected):
    ray = pytest.importorskip("ray")
    messages, want = expected
    # address="local": a private instance, never a cluster some other process on this machine started
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        evaluation = EvaluationConfig(benchmarks=[BenchmarkConfig(name="mini-math")], batch_size=4)
        engine = remote_eval_engine(STUDENT, evaluation)
        got = ray.get([engine.generate.remote(messages, max_new_tokens=MAX_NEW, adapter_path=p)
                       for p in [*checkpoints, None]])
        assert got == [want[checkpoints[0]], want[checkpoints[1]], want[None]]
        assert ray.get(engine.adapter.remote()) is None
    finally:
        ray.shutdown()
