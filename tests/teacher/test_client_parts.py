"""Client building blocks: reasoning normalisation across providers, Retry-After parsing, pacing and AIMD."""

from __future__ import annotations

import asyncio
import email.utils
import time

import pytest

from distill_ray.teacher.client import _retry_after, normalise_message, training_text
from distill_ray.teacher.ratelimit import AdaptiveWindow, RateLimiter

CASES = [
    # (message, reasoning, content)
    ({"content": "A", "reasoning": "R"}, "R", "A"),  # OpenRouter
    ({"content": "A", "reasoning_content": "R"}, "R", "A"),  # DeepSeek
    ({"content": "<think>\nR\n</think>\n\nA"}, "R", "A"),  # inline, R1 deployments
    ({"content": "  <think>R</think>A"}, "R", "A"),
    ({"content": "<think>\nR cut off mid"}, "R cut off mid", ""),  # truncated inside the reasoning
    ({"content": "R without opening tag</think>\n\nA"}, "R without opening tag", "A"),  # some R1 servings
    ({"content": "A", "reasoning_details": [{"type": "reasoning.text", "text": "R"}]}, "R", "A"),
    ({"content": None, "reasoning": "R"}, "R", ""),
    ({"content": "plain answer"}, "", "plain answer"),
    ({"content": "see <think> in the middle"}, "", "see <think> in the middle"),
]


@pytest.mark.parametrize("message,reasoning,content", CASES)
def test_normalise_message(message, reasoning, content):
    assert normalise_message(message) == (reasoning, content)


def test_training_text():
    assert training_text("R", "A") == "<think>R</think>\n\nA"


def test_retry_after_forms():
    assert _retry_after({"retry-after-ms": "250", "retry-after": "1"}) == 0.25  # the precise one wins
    assert _retry_after({"retry-after": "3"}) == 3.0
    date = email.utils.formatdate(time.time() + 5, usegmt=True)
    assert 3.5 < _retry_after({"retry-after": date}) <= 5.0
    assert _retry_after({"retry-after": "soon"}) is None
    assert _retry_after({}) is None


def test_limiter_paces_requests_evenly():
    limiter = RateLimiter(max_rps=50)
    delays = limiter.acquire(10) + limiter.acquire(10)
    gaps = [b - a for a, b in zip(delays, delays[1:], strict=False)]
    assert delays[0] == pytest.approx(0.0, abs=0.01)
    assert all(g == pytest.approx(0.02, abs=0.002) for g in gaps)  # 1/50 s apart, no burst


def test_limiter_paces_tokens_after_a_burst():
    limiter = RateLimiter(max_tokens_per_minute=6000, burst_s=1.0)  # 100 tokens/s, 1 s of burst
    delays = limiter.acquire(4, tokens_each=50)
    assert delays[:3] == pytest.approx([0, 0, 0], abs=0.01)  # within the burst
    assert delays[3] == pytest.approx(0.5, abs=0.02)
    limiter.adjust_tokens(-100)  # the requests were 100 tokens smaller than estimated: one second earlier
    assert limiter.acquire(1, tokens_each=50)[0] == pytest.approx(0.0, abs=0.02)  # would have been 1.0 s


def test_limiter_slows_on_429_and_recovers():
    limiter = RateLimiter(max_rps=100)
    assert limiter.throttled(1.0) == pytest.approx(90)
    assert limiter.throttled(1.0) == pytest.approx(90)  # at most one cut a second: no collapse in a 429 burst
    limiter._last_recover -= 2.0  # two seconds of success
    limiter.acquire(1)
    assert limiter.rate == pytest.approx(94, abs=0.5)


def test_adaptive_window_halves_and_regrows():
    async def scenario() -> tuple[int, int, float]:
        window = AdaptiveWindow(16, cooldown_s=0.0)
        for _ in range(16):
            await window.acquire()
        blocked = asyncio.ensure_future(window.acquire())
        await asyncio.sleep(0)
        assert not blocked.done()
        window.on_throttle()
        after_cut = int(window.limit)
        for _ in range(8):
            window.release()
        await asyncio.sleep(0)
        assert not blocked.done()  # 8 in flight, limit 8: still waiting
        window.release()
        await asyncio.sleep(0)
        assert blocked.done()  # 7 in flight: admitted
        for _ in range(40):
            window.on_success()
        return after_cut, window.in_flight, window.limit

    after_cut, in_flight, limit = asyncio.run(scenario())
    assert after_cut == 8 and in_flight == 8 and 10 < limit <= 16
