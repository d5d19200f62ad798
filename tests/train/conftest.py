"""Shared fixtures for the train-stage tests: a private model cache, concise traces, and a small Ray cluster."""

from __future__ import annotations

import pytest

from distill_ray.builtin_problems import make_problems, simulated_response


@pytest.fixture(scope="session", autouse=True)
def _private_cache(private_model_cache):
    """The tests of this folder build their tiny students in a private cache (tests/conftest.py)."""


def _concise_examples(domain: str, n: int, seed: int = 0) -> list[dict]:
    """TrainExample rows written by the concise simulated teacher, always correct."""
    rows = []
    for problem in make_problems(domain, "train", n, seed):
        reasoning, content = simulated_response(problem["prompt"], "concise", 1.0, problem["id"])
        rows.append({"id": problem["id"], "prompt": problem["prompt"],
                     "response": f"<think>{reasoning}</think>\n\n{content}"})
    return rows


@pytest.fixture(scope="session")
def concise_examples():
    """A factory: concise_examples(domain, n, seed=0) -> TrainExample rows."""
    return _concise_examples


@pytest.fixture(scope="module")
def ray_cluster():
    """A 4-CPU local Ray (logical CPUs: up to three workers plus the Train controller), shut down after the module."""
    ray = pytest.importorskip("ray")
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()
