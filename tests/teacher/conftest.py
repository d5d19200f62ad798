"""Fixtures for the teacher stage: simulated servers on 127.0.0.1 (stopped after each test) and small problem sets."""

from __future__ import annotations

import pytest

from distill_ray.builtin_problems import make_problems
from distill_ray.config import TeacherConfig
from distill_ray.teacher import start_teacher_server

TEACHERS = {
    "sim/concise": {"style": "concise", "correct_rate": 0.75},
    "sim/verbose": {"style": "verbose", "correct_rate": 0.5},
    "sim/deepseek": {"style": "concise", "correct_rate": 0.75, "reasoning_format": "reasoning_content"},
}


@pytest.fixture
def server_factory():
    handles = []

    def start(faults=None, **kwargs):
        handle = start_teacher_server(host="127.0.0.1", port=0, teachers=kwargs.pop("teachers", TEACHERS),
                                      faults=faults, **kwargs)
        handles.append(handle)
        return handle

    yield start
    for handle in handles:
        handle.stop()


@pytest.fixture
def problems():
    return make_problems("math", "train", 24, seed=3) + make_problems("code", "train", 16, seed=3)


@pytest.fixture
def teacher_config():
    return make_teacher_config


def make_teacher_config(base_url: str, model: str = "sim/concise", **overrides) -> TeacherConfig:
    """A remote-style config for the simulated server, with fast retries so tests stay short."""
    values = {"provider": "openai-compatible", "base_url": base_url, "model": model, "concurrency": 16,
              "request_timeout_s": 5.0, "retry_base_delay_s": 0.02, "retry_max_delay_s": 0.2,
              "sampling": {"max_tokens": 2048}}
    values.update(overrides)
    return TeacherConfig(**values)
