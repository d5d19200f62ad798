"""The generate stage is done only when complete; training refuses too many permanent failures (the sweep's path)."""

from __future__ import annotations

import json
import os

import pytest

from distill_ray.builtin_problems import make_problems
from distill_ray.config import TeacherConfig
from distill_ray.stages.generate import (
    GenerationIncomplete,
    TooManyFailures,
    check_trainable,
    failure_share,
    generate_stage,
)

MODEL = "deepseek/r1-sim"


def _teacher(base_url: str, **overrides) -> TeacherConfig:
    values = {"provider": "openrouter", "base_url": base_url, "model": MODEL, "concurrency": 8,
              "request_timeout_s": 5.0, "retry_base_delay_s": 0.02, "retry_max_delay_s": 0.1,
              "sampling": {"max_tokens": 1024}}
    values.update(overrides)
    return TeacherConfig(**values)


def test_transient_failures_leave_the_stage_undone_and_a_rerun_retries_only_them(server_factory, tmp_path):
    problems = make_problems("math", "train", 12, seed=2)
    failing = server_factory(teachers={MODEL: {"style": "verbose", "correct_rate": 0.5}},
                             profile={"error_in_200_rate": 1.0})
    exp = str(tmp_path / "exp")
    marker = os.path.join(exp, "traces", "r1", "math", "generated.json")
    with pytest.raises(GenerationIncomplete, match="error_in_200"):
        generate_stage(exp, "r1", _teacher(failing.base_url, max_retries=1), "math", problems)
    assert not os.path.exists(marker)
    good = server_factory(teachers={MODEL: {"style": "verbose", "correct_rate": 0.5}}, profile={})
    summary = generate_stage(exp, "r1", _teacher(good.base_url), "math", problems)
    assert summary["complete"] and summary["ok"] == 12 and good.billed() == 12
    assert json.load(open(marker))["failure_reasons"] == {}


def test_training_refuses_a_teacher_domain_above_the_failure_threshold(server_factory, tmp_path):
    problems = make_problems("math", "train", 20, seed=2)
    flagged = [p["prompt"] for p in problems[:2]]  # 10% flagged by moderation
    server = server_factory(teachers={MODEL: {"style": "verbose", "correct_rate": 0.5}},
                            profile={"moderation_prompts": flagged})
    exp = str(tmp_path / "exp")
    summary = generate_stage(exp, "r1", _teacher(server.base_url), "math", problems)
    assert summary["complete"] and summary["failure_reasons"] == {"moderation": 2}
    with pytest.raises(TooManyFailures, match=r"10\.0% of 20 .*moderation.*max_failure_share"):
        check_trainable(exp, "r1", "math", 0.05)
    check_trainable(exp, "r1", "math", 0.10)  # at the threshold: allowed


@pytest.mark.parametrize("summary, share", [
    ({"rows": 100, "permanent_failures": 0, "failure_reasons": {}}, 0.0),
    ({"rows": 100, "permanent_failures": 6, "failure_reasons": {"moderation": 6}}, 0.06),
    ({"rows": 100, "permanent_failures": 30, "failure_reasons": {"truncated": 28, "content_filter": 2}}, 0.02),
    ({"rows": 0, "permanent_failures": 0, "failure_reasons": {}}, 0.0),
], ids=["none", "moderation", "truncation-aside", "empty"])
def test_failure_share(summary, share):
    assert failure_share(summary) == pytest.approx(share)
