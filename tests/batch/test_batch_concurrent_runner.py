"""The concurrent runner's decisions with a fake send (a unit; the wire is tested against the emulator)."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from typing import Any

from airflow_provider_openrouter.batch.concurrent import (
    AdaptiveGate,
    ConcurrentRunner,
    Progress,
    RunnerSettings,
)
from airflow_provider_openrouter.batch.inputs import BatchRow
from airflow_provider_openrouter.exceptions import (
    OpenRouterInsufficientCreditsError,
    OpenRouterModerationError,
    OpenRouterOutcomeUnknownError,
    OpenRouterRateLimitError,
    OpenRouterRequestError,
    OpenRouterUpstreamError,
)
from airflow_provider_openrouter.models import ChatCompletion

LOG = logging.getLogger("test.batch.runner")


def _rows(count: int) -> list[BatchRow]:
    return [
        BatchRow(n, f"row-{n + 1}", [{"role": "user", "content": f"p{n}"}], {}, f"inputs[{n}]")
        for n in range(count)
    ]


def _answer(row: BatchRow) -> ChatCompletion:
    return ChatCompletion.model_validate(
        {
            "id": f"gen-{row.index}",
            "model": "m",
            "choices": [{"message": {"content": f"a{row.index}"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5, "cost": 0.001},
        }
    )


class Recorder:
    """The checkpoint's stand-in: ``journal`` is everything recorded, ``records`` the outcome records."""

    def __init__(self) -> None:
        self.journal: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def __call__(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.journal.append(record)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for record in self.journal if record["status"] != "sending"]

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {record["custom_id"]: record for record in self.records}


def _runner(send: Any, count: int, **settings: Any) -> tuple[ConcurrentRunner, Recorder]:
    recorder = Recorder()
    options = {"concurrency": 4, "backoff": 0.0, **settings}
    runner = ConcurrentRunner(
        send, recorder, RunnerSettings(**options), Progress(count, 0, LOG, interval=3600), LOG
    )
    return runner, recorder


def _run(send: Any, count: int, **settings: Any) -> tuple[ConcurrentRunner, Recorder]:
    runner, recorder = _runner(send, count, **settings)
    runner.run(_rows(count))
    return runner, recorder


def _run_in_background(runner: ConcurrentRunner, count: int) -> threading.Thread:
    thread = threading.Thread(target=runner.run, args=(_rows(count),), daemon=True)
    thread.start()
    return thread


def test_every_row_is_sent_once_and_recorded_once() -> None:
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def send(row: BatchRow) -> ChatCompletion:
        with lock:
            calls[row.custom_id] += 1
        return _answer(row)

    runner, recorder = _run(send, 50)
    assert sorted(calls.values()) == [1] * 50
    assert sorted(record["index"] for record in recorder.records) == list(range(50))
    for index in range(50):  # the in-flight marker is journaled before the outcome
        assert [r["status"] for r in recorder.journal if r["index"] == index] == ["sending", "succeeded"]
    assert all(record["status"] == "succeeded" for record in recorder.records)
    assert runner.requests_sent == 50


def test_rows_in_flight_never_exceed_the_concurrency() -> None:
    in_flight = 0
    peak = 0
    lock = threading.Lock()
    all_started = threading.Barrier(3, timeout=30)

    def send(row: BatchRow) -> ChatCompletion:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
        if row.index < 3:
            all_started.wait()  # the first three meet, so three really are in flight together
        with lock:
            in_flight -= 1
        return _answer(row)

    _run(send, 40, concurrency=3)
    assert peak == 3


def test_a_safe_upstream_error_is_retried_then_recorded_as_failed() -> None:
    attempts: Counter[str] = Counter()
    lock = threading.Lock()

    def send(row: BatchRow) -> ChatCompletion:
        with lock:
            attempts[row.custom_id] += 1
            seen = attempts[row.custom_id]
        if row.custom_id == "row-1" and seen <= 2:
            raise OpenRouterUpstreamError("overloaded", status=503)  # answered before generation: not billed
        if row.custom_id == "row-2":
            raise OpenRouterUpstreamError("still down", status=502)
        return _answer(row)

    _, recorder = _run(send, 3, row_retries=3)
    records = recorder.by_id()
    assert records["row-1"]["status"] == "succeeded"
    assert records["row-1"]["attempts"] == 3
    assert records["row-2"]["status"] == "failed"
    assert attempts["row-2"] == 4  # the first attempt and three retries
    assert records["row-2"]["error"]["billed"] is False
    assert records["row-2"]["error"]["retryable"] is True


def test_an_unknown_outcome_is_never_resent() -> None:
    attempts: Counter[str] = Counter()

    def send(row: BatchRow) -> ChatCompletion:
        attempts[row.custom_id] += 1
        if row.custom_id == "row-2":
            raise OpenRouterOutcomeUnknownError("read timed out", generation_id="gen-lost")
        return _answer(row)

    _, recorder = _run(send, 3, concurrency=1)
    record = recorder.by_id()["row-2"]
    assert attempts["row-2"] == 1
    assert record["status"] == "outcome_unknown"
    assert record["generation_id"] == "gen-lost"
    assert record["error"]["billed"] is None


def test_a_429_inside_a_200_body_is_an_unknown_outcome_not_a_rate_limit_to_wait_out() -> None:
    attempts: Counter[str] = Counter()

    def send(row: BatchRow) -> ChatCompletion:
        attempts[row.custom_id] += 1
        if row.custom_id == "row-2":  # what the transport raises for {"error": {"code": 429}} in a 200
            raise OpenRouterRateLimitError("rate limited upstream", status=429, in_body=True, billed=None)
        return _answer(row)

    runner, recorder = _run(send, 3, concurrency=1)
    record = recorder.by_id()["row-2"]
    assert attempts["row-2"] == 1
    assert record["status"] == "outcome_unknown"
    assert record["error"]["billed"] is None
    assert runner.rate_limited == 0


def test_request_errors_and_moderation_fail_the_row_not_the_run() -> None:
    def send(row: BatchRow) -> ChatCompletion:
        if row.index == 0:
            raise OpenRouterRequestError("bad temperature", status=400)
        if row.index == 1:
            raise OpenRouterModerationError("flagged", status=403, metadata={"reasons": ["x"]})
        return _answer(row)

    runner, recorder = _run(send, 5, concurrency=1)
    statuses = [recorder.by_id()[f"row-{n}"]["status"] for n in range(1, 6)]
    assert statuses == ["failed", "failed", "succeeded", "succeeded", "succeeded"]
    assert runner.stop_error is None


def test_an_account_error_stops_sending_and_labels_its_row_not_sent() -> None:
    sent: list[int] = []

    def send(row: BatchRow) -> ChatCompletion:
        sent.append(row.index)
        if row.index == 2:
            raise OpenRouterInsufficientCreditsError("no credits", status=402)
        return _answer(row)

    runner, recorder = _run(send, 10, concurrency=1)
    assert sent == [0, 1, 2]
    assert isinstance(runner.stop_error, OpenRouterInsufficientCreditsError)
    assert [(record["index"], record["status"]) for record in recorder.records] == [
        (0, "succeeded"),
        (1, "succeeded"),
        (2, "not_sent"),
    ]
    assert recorder.records[2]["error"]["billed"] is False


def test_a_429_pauses_the_pool_halves_the_flight_and_resends_the_row() -> None:
    attempts: Counter[str] = Counter()
    lock = threading.Lock()

    def send(row: BatchRow) -> ChatCompletion:
        with lock:
            attempts[row.custom_id] += 1
            first = attempts[row.custom_id] == 1
        if row.index == 0 and first:
            raise OpenRouterRateLimitError("slow down", status=429, retry_after=0.01)
        return _answer(row)

    runner, recorder = _run(send, 20, concurrency=8)
    assert runner.rate_limited == 1
    assert attempts["row-1"] == 2
    assert all(record["status"] == "succeeded" for record in recorder.records)
    assert len(recorder.records) == 20


def test_progress_line_reports_done_failures_tokens_cost_and_eta() -> None:
    progress = Progress(total=10, already_done=4, log=LOG, interval=3600)
    progress.add({"status": "succeeded", "usage": {"total_tokens": 5}, "cost": 0.25})
    progress.add({"status": "failed", "usage": None, "cost": None})
    line = progress.line()
    assert "6/10 rows (60.0%)" in line
    assert "1 failed" in line
    assert "5 tokens" in line
    assert "cost 0.25 USD" in line
    assert "ETA" in line


def test_the_gate_halves_the_flight_on_a_429_and_regains_one_per_success() -> None:
    gate = AdaptiveGate(8)
    gate.rate_limited_for(0.0)
    gate.rate_limited_for(0.0)
    assert gate.limit == 2
    for _ in range(3):
        gate.succeeded()
    assert gate.limit == 5
    for _ in range(10):
        gate.succeeded()
    assert gate.limit == 8
    assert gate.rate_limited == 2


def test_the_gate_admits_nobody_while_a_429_pause_lasts() -> None:
    gate = AdaptiveGate(4)
    gate.rate_limited_for(3600)
    entered = threading.Event()

    def enter() -> None:
        with gate:
            entered.set()

    worker = threading.Thread(target=enter, daemon=True)
    worker.start()
    assert not entered.wait(timeout=0.3)  # still paused: nobody got in
    with gate._cond:  # end the pause, as the clock would
        gate._paused_until = 0.0
        gate._cond.notify_all()
    assert entered.wait(timeout=30)


def test_stop_lets_the_rows_in_flight_finish_and_sends_no_new_row() -> None:
    sent: list[int] = []
    lock = threading.Lock()
    three_in_flight = threading.Barrier(4, timeout=30)  # the three sends and this test
    release = threading.Event()

    def send(row: BatchRow) -> ChatCompletion:
        with lock:
            sent.append(row.index)
        if row.index < 3:
            three_in_flight.wait()
            assert release.wait(timeout=30)
        return _answer(row)

    runner, recorder = _runner(send, 20, concurrency=3)
    thread = _run_in_background(runner, 20)
    three_in_flight.wait()
    runner.stop()
    runner.stop()  # idempotent
    release.set()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert sorted(sent) == [0, 1, 2]
    assert runner.requests_sent == 3
    assert sorted((r["index"], r["status"]) for r in recorder.records) == [
        (0, "succeeded"),
        (1, "succeeded"),
        (2, "succeeded"),
    ]
    assert runner.stop_error is None


def test_stop_ends_a_429_pause_at_once_and_the_waiting_row_is_not_sent() -> None:
    attempts: Counter[int] = Counter()

    def send(row: BatchRow) -> ChatCompletion:
        attempts[row.index] += 1
        raise OpenRouterRateLimitError("slow down", status=429, retry_after=3600)

    runner, recorder = _runner(send, 5, concurrency=1)
    thread = _run_in_background(runner, 5)
    deadline = time.monotonic() + 30
    while runner.rate_limited == 0 and time.monotonic() < deadline:  # poll: the hour-long pause has begun
        time.sleep(0.01)
    assert runner.rate_limited == 1
    runner.stop()
    thread.join(timeout=30)  # without the stop the gate would hold the row for an hour
    assert not thread.is_alive()
    assert attempts == Counter({0: 1})
    ((index, status, error),) = [(r["index"], r["status"], r["error"]) for r in recorder.records]
    assert (index, status) == (0, "not_sent")
    assert error["billed"] is False and "stopped" in error["message"]


def test_stop_ends_a_retry_backoff_and_the_row_is_not_sent() -> None:
    first_try = threading.Event()

    def send(row: BatchRow) -> ChatCompletion:
        first_try.set()
        raise OpenRouterUpstreamError("bad gateway", status=502)  # not billed, retryable

    runner, recorder = _runner(send, 1, concurrency=1, backoff=3600.0, max_backoff=3600.0)
    thread = _run_in_background(runner, 1)
    assert first_try.wait(timeout=30)
    runner.stop()
    thread.join(timeout=30)  # without the stop the row would wait an hour before its retry
    assert not thread.is_alive()
    assert runner.requests_sent == 1
    assert [(r["index"], r["status"]) for r in recorder.records] == [(0, "not_sent")]
