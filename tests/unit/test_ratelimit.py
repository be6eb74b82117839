"""TokenBucket timing on a fake clock (no real sleeps), thread safety, pauses and the shared registry."""

from __future__ import annotations

import asyncio
import itertools
import threading

import pytest

from airflow_provider_openrouter.ratelimit import TokenBucket, bucket_for, clear_buckets


class FakeClock:
    """A monotonic clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


def make_bucket(rpm: float, burst: int | None = None) -> tuple[TokenBucket, FakeClock]:
    clock = FakeClock()
    return TokenBucket(rpm, burst, clock=clock, sleep=clock.sleep), clock


def test_requests_are_spaced_exactly_at_the_rate() -> None:
    bucket, clock = make_bucket(600)  # one every 0.1 s
    start = clock.now
    for _ in range(50):
        bucket.acquire()
    # The first goes at once; 49 more need 49 intervals. No drift: exactly 4.9 s, not 4.9 s + overheads.
    assert clock.now - start == pytest.approx(4.9, abs=1e-9)


def test_burst_goes_at_once_then_the_rate_applies() -> None:
    bucket, clock = make_bucket(60, burst=5)  # one per second, five at once
    start = clock.now
    for _ in range(5):
        assert bucket.acquire() == 0.0
    assert clock.now == start
    assert bucket.acquire() == pytest.approx(1.0)


def test_idle_time_refills_at_most_burst_tokens() -> None:
    bucket, clock = make_bucket(60, burst=3)
    for _ in range(3):
        bucket.acquire()
    clock.now += 3600  # an hour idle earns no more than 3 tokens
    assert [bucket.acquire() for _ in range(4)] == [0.0, 0.0, 0.0, pytest.approx(1.0)]


def test_pause_holds_every_caller_until_the_deadline() -> None:
    bucket, clock = make_bucket(600)
    bucket.acquire()
    bucket.pause_until(clock.now + 5.0)
    waited = bucket.acquire()
    assert waited == pytest.approx(5.0)
    # After the pause the rate resumes, no burst of pent-up requests.
    assert bucket.acquire() == pytest.approx(0.1)


def test_a_shorter_pause_does_not_cut_a_longer_one() -> None:
    bucket, clock = make_bucket(600)
    bucket.pause_until(clock.now + 10.0)
    bucket.pause_until(clock.now + 1.0)
    assert bucket.acquire() == pytest.approx(10.0)


def test_a_sleeper_whose_slot_falls_in_a_new_pause_books_again() -> None:
    clock = FakeClock()
    holder: list[TokenBucket] = []

    def sleep_and_get_paused(seconds: float) -> None:
        # While this caller sleeps toward its slot, a 429 elsewhere pauses the bucket for 3 s.
        if not clock.sleeps:
            holder[0].pause_until(clock.now + 3.0)
        clock.sleep(seconds)

    bucket = TokenBucket(60, clock=clock, sleep=sleep_and_get_paused)
    holder.append(bucket)
    start = clock.now
    bucket.acquire()  # first token, no wait
    bucket.acquire()  # booked slot at +1 s, then re-booked after the pause at +3 s
    assert clock.now - start >= 3.0


def test_threads_share_the_schedule_without_double_booking() -> None:
    bucket, _clock = make_bucket(6000)  # 0.01 s apart on the fake clock
    slots: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            slot = bucket._reserve()
            with lock:
                slots.append(slot)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    ordered = sorted(slots)
    assert len(set(ordered)) == 200  # every request got its own slot
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    assert min(gaps) == pytest.approx(0.01) and max(gaps) == pytest.approx(0.01)


def test_async_acquire_uses_the_same_schedule() -> None:
    bucket, _clock = make_bucket(60, burst=2)

    async def run() -> list[bool]:
        return [await bucket.acquire_async() == 0.0 for _ in range(2)]

    assert asyncio.run(run()) == [True, True]
    assert bucket.acquire() == pytest.approx(1.0)  # the async takers used up the burst


@pytest.mark.parametrize("rpm", [0, -1])
def test_invalid_rates_are_rejected(rpm: float) -> None:
    with pytest.raises(ValueError, match="requests_per_minute must be positive"):
        TokenBucket(rpm)


def test_registry_shares_one_bucket_per_connection_and_rate() -> None:
    clear_buckets()
    first = bucket_for("conn_a", 100)
    assert first is not None
    assert bucket_for("conn_a", 100) is first
    assert bucket_for("conn_b", 100) is not first
    assert bucket_for("conn_a", 200) is not first
    assert bucket_for("conn_a", 0) is None
    assert bucket_for("conn_a", None) is None
    clear_buckets()
    assert bucket_for("conn_a", 100) is not first
