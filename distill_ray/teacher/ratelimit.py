"""Rate limiting for the teacher stage: one cluster-wide pacer per provider, and a per-client adaptive window.

`RateLimiter` hands out send slots for requests/s and tokens/min. It is a plain class; `generate_traces` makes it a
named Ray actor (`limiter_name(...)`, `get_if_exists`), so every client actor of every trial that talks to the same
endpoint and model draws from one budget. Clients lease slots in small chunks (one actor call per chunk, not per
request) and sleep until each slot. Slots are spaced evenly (GCRA with no burst for requests; up to `burst_s` seconds
of burst for tokens), so a provider's limit is met without bursts that trip it. A 429 cuts the pace by 10% (at most
once a second) and success brings it back by 2% of the limit per second: a provider stricter than the configured
limit settles just under its own limit instead of storming.

`AdaptiveWindow` is a client's concurrency limit: AIMD, halving towards 1 on a 429 (at most once per `cooldown_s`)
and growing by 1/limit per success back up to the configured concurrency.

Not guaranteed: slots are in the limiter's clock (monotonic, per node) and converted to delays when leased; the RPC
latency of a lease (a millisecond) is not corrected for. Token pacing uses an estimate per request that clients
correct after the response (`adjust_tokens`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import deque


def limiter_name(base_url: str, model: str) -> str:
    return "distill-ray-limiter-" + hashlib.sha256(f"{base_url.rstrip('/')}|{model}".encode()).hexdigest()[:16]


class RateLimiter:
    """Paces request starts for requests/s and tokens/min; `acquire` returns delays (seconds from now)."""

    def __init__(self, max_rps: float | None = None, max_tokens_per_minute: float | None = None, burst_s: float = 5.0):
        self.configure(max_rps, max_tokens_per_minute, burst_s)
        now = time.monotonic()
        self._tat_requests = now  # theoretical arrival time of the next request slot
        self._tat_tokens = now
        self._last_cut = 0.0
        self._last_recover = now
        self.throttles = 0
        self.granted = 0

    def configure(self, max_rps: float | None, max_tokens_per_minute: float | None, burst_s: float = 5.0) -> None:
        self.max_rps = max_rps
        self.rate = max_rps  # the pace now, <= max_rps after 429s
        self.tokens_per_s = max_tokens_per_minute / 60.0 if max_tokens_per_minute else None
        self.burst_s = burst_s

    def _recover(self, now: float) -> None:
        if self.max_rps and self.rate is not None and self.rate < self.max_rps:
            self.rate = min(self.max_rps, self.rate + 0.02 * self.max_rps * (now - self._last_recover))
        self._last_recover = now

    def acquire(self, count: int, tokens_each: float = 0.0) -> list[float]:
        """Reserve `count` send slots for requests of about `tokens_each` tokens; returns each slot's delay."""
        now = time.monotonic()
        self._recover(now)
        delays = []
        for _ in range(max(0, count)):
            slot = now
            if self.rate:
                slot = max(slot, self._tat_requests)
            if self.tokens_per_s:
                slot = max(slot, self._tat_tokens - self.burst_s)
            if self.rate:
                self._tat_requests = max(self._tat_requests, slot) + 1.0 / self.rate
            if self.tokens_per_s:
                self._tat_tokens = max(self._tat_tokens, slot) + tokens_each / self.tokens_per_s
            delays.append(slot - now)
        self.granted += len(delays)
        return delays

    def adjust_tokens(self, delta: float) -> None:
        """Correct the token pace by (actual - estimated) tokens of finished requests."""
        if self.tokens_per_s:
            self._tat_tokens += delta / self.tokens_per_s

    def throttled(self, retry_after: float | None = None) -> float | None:
        """A provider said 429: slow the pace. Returns the pace now (requests/s; None when unpaced)."""
        now = time.monotonic()
        self.throttles += 1
        if self.rate and now - self._last_cut >= 1.0:
            self.rate = max(self.max_rps * 0.2, self.rate * 0.9)  # type: ignore[operator]
            self._last_cut = now
        return self.rate

    def state(self) -> dict:
        return {"max_rps": self.max_rps, "rate": self.rate, "throttles": self.throttles, "granted": self.granted,
                "tokens_per_minute": self.tokens_per_s * 60 if self.tokens_per_s else None}


class AdaptiveWindow:
    """A concurrency limit that shrinks on throttling and grows back on success (AIMD)."""

    def __init__(self, max_limit: int, cooldown_s: float = 1.0):
        self.max_limit = max(1, max_limit)
        self.limit = float(self.max_limit)
        self.in_flight = 0
        self.cooldown_s = cooldown_s
        self._last_cut = 0.0
        self._waiters: deque[asyncio.Future] = deque()
        self.min_seen = self.max_limit

    async def acquire(self) -> None:
        while self.in_flight >= int(self.limit):
            future = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future
            except asyncio.CancelledError:
                if future in self._waiters:
                    self._waiters.remove(future)
                raise
        self.in_flight += 1

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        free = int(self.limit) - self.in_flight
        while free > 0 and self._waiters:
            future = self._waiters.popleft()
            if not future.done():
                future.set_result(None)
                free -= 1

    def on_success(self) -> None:
        if self.limit < self.max_limit:
            self.limit = min(float(self.max_limit), self.limit + 1.0 / self.limit)
            self._wake()

    def on_throttle(self) -> None:
        now = time.monotonic()
        if now - self._last_cut >= self.cooldown_s:
            self.limit = max(1.0, self.limit / 2)
            self.min_seen = min(self.min_seen, int(self.limit))
            self._last_cut = now
