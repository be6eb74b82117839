"""Client-side rate limiting: one token bucket per connection per process.

The bucket is a GCRA ("virtual scheduling") limiter: each caller reserves the next free slot on a fixed grid
of ``60 / requests_per_minute`` seconds and sleeps until it. Because slots come from the schedule rather than
from when a sleeper happened to wake up, N requests take ``(N - burst) * interval`` however many threads share
the bucket: no busy-waiting and no drift.

A 429 answer pauses the whole bucket (:meth:`TokenBucket.pause_until`), so every task of that connection in
the process backs off together instead of each discovering the limit on its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable

__all__ = ["DEFAULT_REQUESTS_PER_MINUTE", "TokenBucket", "bucket_for", "clear_buckets"]

DEFAULT_REQUESTS_PER_MINUTE = 100.0
"""The OpenRouter connector's throttling: 100 calls per connection per 60 seconds."""


class TokenBucket:
    """A thread-safe token bucket refilled at ``requests_per_minute``, holding at most ``burst`` tokens.

    :param requests_per_minute: sustained rate; must be positive.
    :param burst: how many requests may go at once after a quiet spell (default 1: evenly spaced).
    :param clock: monotonic clock in seconds (injectable for tests).
    :param sleep: blocking sleep used by :meth:`acquire` (injectable for tests).
    """

    def __init__(
        self,
        requests_per_minute: float,
        burst: int | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not requests_per_minute or requests_per_minute <= 0:
            raise ValueError(f"requests_per_minute must be positive, got {requests_per_minute!r}")
        burst = 1 if burst is None else int(burst)
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self.requests_per_minute = float(requests_per_minute)
        self.burst = burst
        self.interval = 60.0 / self.requests_per_minute
        self._tolerance = (burst - 1) * self.interval
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        # Theoretical arrival time of the next request on the schedule; the bucket starts full.
        self._tat = clock() - self._tolerance
        self._paused_until = float("-inf")

    def __repr__(self) -> str:
        return f"TokenBucket(requests_per_minute={self.requests_per_minute:g}, burst={self.burst})"

    def _reserve(self) -> float:
        """Book the next free slot and return its monotonic time (may be now)."""
        with self._lock:
            now = self._clock()
            tat = max(self._tat, now, self._paused_until + self._tolerance)
            slot = max(now, tat - self._tolerance)
            self._tat = tat + self.interval
            return slot

    def _slot_still_valid(self, slot: float) -> bool:
        """False when a pause started after the slot was booked and covers it."""
        with self._lock:
            return slot >= self._paused_until

    def acquire(self) -> float:
        """Block until a request may be sent; return the seconds waited."""
        waited = 0.0
        while True:
            slot = self._reserve()
            delay = slot - self._clock()
            if delay > 0:
                self._sleep(delay)
                waited += delay
            if self._slot_still_valid(slot):
                return waited

    async def acquire_async(self) -> float:
        """:meth:`acquire` for an event loop: waits with ``asyncio.sleep``."""
        waited = 0.0
        while True:
            slot = self._reserve()
            delay = slot - self._clock()
            if delay > 0:
                await asyncio.sleep(delay)
                waited += delay
            if self._slot_still_valid(slot):
                return waited

    def pause_until(self, deadline: float) -> None:
        """Let no request through before the monotonic time ``deadline`` (e.g. a 429's reset).

        Callers already sleeping on a slot inside the pause book a new slot after it. A pause never shortens
        an earlier, longer one.
        """
        with self._lock:
            self._paused_until = max(self._paused_until, deadline)


_registry: dict[tuple[str, float, int], TokenBucket] = {}
_registry_lock = threading.Lock()


def bucket_for(
    conn_id: str, requests_per_minute: float | None, burst: int | None = None
) -> TokenBucket | None:
    """The process-wide bucket of a connection, created on first use; ``None`` when the limit is off.

    Every hook and transport of ``conn_id`` in this process shares the returned bucket, as long as they are
    configured with the same rate (a changed rate gets its own bucket).
    """
    if not requests_per_minute or requests_per_minute <= 0:
        return None
    key = (conn_id, float(requests_per_minute), 1 if burst is None else int(burst))
    with _registry_lock:
        bucket = _registry.get(key)
        if bucket is None:
            bucket = _registry[key] = TokenBucket(requests_per_minute, burst)
        return bucket


def clear_buckets() -> None:
    """Forget every shared bucket (tests, or a process that re-reads its connections)."""
    with _registry_lock:
        _registry.clear()
