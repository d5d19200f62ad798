"""Shared fixtures for the verify tests: one grader pool and one sandbox pool per session (they are slow to start)."""

from __future__ import annotations

import pytest

from distill_ray.verify.math_grader import MathGrader
from distill_ray.verify.sandbox import SandboxPool


@pytest.fixture(scope="session")
def grader():
    with MathGrader(workers=2, timeout_s=1.5) as g:
        yield g


@pytest.fixture(scope="session")
def pool():
    with SandboxPool(workers=2) as p:
        yield p
