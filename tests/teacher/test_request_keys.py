"""Cache keys pinned to the values computed before issue 19 (commit 49773cd): a stored teacher cache stays valid.

The request body and the cache key come from one builder (`client.answer_shaping_fields`); these keys were computed
on main with the code that built them separately, for a built-in teacher and an OpenRouter teacher with reasoning,
routing and extra_body.
"""

from __future__ import annotations

from distill_ray.config import TeacherConfig
from distill_ray.teacher.cache import request_key
from distill_ray.teacher.client import request_body, sampling_for
from distill_ray.teacher.spec import teacher_spec

MESSAGES = [{"role": "user", "content": "What is 2+3? Put the answer in \\boxed{}."}]
BUILTIN = TeacherConfig(provider="builtin", model="sim/concise", style="concise", correct_rate=0.9,
                        base_url="http://127.0.0.1:8000/v1")
OPENROUTER = TeacherConfig(provider="openrouter", model="anthropic/claude-sonnet-4.5",
                           base_url="https://openrouter.ai/api/v1", api_key_env="OPENROUTER_API_KEY",
                           reasoning={"effort": "high"}, provider_routing={"order": ["anthropic"]},
                           extra_body={"usage": {"include": True}},
                           sampling={"temperature": None, "top_p": None, "max_tokens": 4000})


def _key(name: str, config: TeacherConfig) -> str:
    teacher = teacher_spec(name, config)
    return request_key(teacher.cache_url, teacher.model, MESSAGES, sampling_for(teacher, 4000), 1)


def test_cache_keys_are_the_ones_computed_on_main() -> None:
    assert _key("builtin", BUILTIN) == "7e407d6b37347d33e9c45731a5ceb5dcfd68770448cbfcfdab98ac5ca1d51778"
    assert _key("openrouter", OPENROUTER) == "85a20ff0f5244cbe994e51798a45691836cd87c8300337d0e7315f6b9aaadea9"


def test_request_bodies_are_the_ones_sent_before() -> None:
    assert request_body(teacher_spec("builtin", BUILTIN), MESSAGES, 2, 4000) == {
        "model": "sim/concise", "messages": MESSAGES, "temperature": 0.7, "top_p": 1.0, "max_tokens": 4000, "n": 2}
    assert request_body(teacher_spec("openrouter", OPENROUTER), MESSAGES, 1, 4000) == {
        "model": "anthropic/claude-sonnet-4.5", "messages": MESSAGES, "max_tokens": 4000,
        "reasoning": {"effort": "high"}, "provider": {"order": ["anthropic"]}, "usage": {"include": True}}
