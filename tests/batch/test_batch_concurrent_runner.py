"""The concurrent engine's decisions with a fake send (a unit; the wire is tested against the emulator)."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from typing import Any

from airflow_provider_openrouter.batch.concurrent import (
    ConcurrentRunner,
    Pacer,
    Progress,
    RunnerSettings,
)
from airflow_provider_openrouter.batch.inputs import BatchRow
from airflow_provider_openrouter.exceptions import (
    OpenRouterConnectionError,
    OpenRouterInsufficientCreditsError,
    OpenRouterModerationError,
    OpenRouterOutcomeUnknownError,
    OpenRouterRateLimitError,
    OpenRouterRequestError,
    OpenRouterUpstreamError,
)

LOG = logging.getLogger("test.batch.runner")


def _rows(count: int) -> list[BatchRow]:
    return [
        BatchRow(n, f"row-{n + 1}", [{"role": "user", "content": f"p{n}"}], {}, f"inputs[{n}]")
        for n in range(count)
    ]


def _answer(row: BatchRow) -> dict[str, Any]:
    return {
        "id": f"gen-{row.index}",
        "model": "m",
        "choices": [{"message": {"content": f"a{row.index}"}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 3, "total_tokens": 5, "cost": 0.001},
    }


class Recorder:
    """The checkpoint's stand-in: ``journal`` is everything recorded, ``records`` the outcome records."""

    def __init__(self) -> None:
        self.journal: list[dict[str, Any]] = []

    def record(self, record: dict[str, Any], *, mirror_now: bool = True) -> None:
        self.journal.append(record)

    @property
    def records(self) -> list[dict[str, Any]]:
        return [record for record in self.journal if record["status"] != "sending"]

    def by_id(self) -> dict[str, dict[str, Any]]:
        return {record["custom_id"]: record for record in self.records}


def _runner(send: Any, count: int, **settings: Any) -> tuple[ConcurrentRunner, Recorder]:
    recorder = Recorder()
    options = {"concurrency": 4, "backoff": 0.0, "connection_retries": 0, "retry_window": 86400.0, **settings}
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

    async def send(row: BatchRow) -> dict[str, Any]:
        calls[row.custom_id] += 1
        await asyncio.sleep(0)
        return _answer(row)

    runner, recorder = _run(send, 50)
    assert sorted(calls.values()) == [1] * 50
    assert sorted(record["index"] for record in recorder.records) == list(range(50))
    for index in range(50):  # the in-flight marker is journaled before the outcome
        assert [r["status"] for r in recorder.journal if r["index"] == index] == ["sending", "succeeded"]
    assert all(record["status"] == "succeeded" for record in recorder.records)
    assert runner.requests_sent == 50


def test_answers_arriving_together_send_the_next_requests_before_any_is_recorded() -> None:
    """At latency L, rows sent together come back together: each worker sends its next request first and
    the records follow, so the next round does not wait for the bookkeeping of this one."""
    answers_due = asyncio.Event()
    order: list[str] = []

    async def send(row: BatchRow) -> dict[str, Any]:
        order.append(f"send {row.index}")
        if row.index < 3:  # the first round: all three answers come back at once
            if row.index == 2:
                answers_due.set()
            await answers_due.wait()
        return _answer(row)

    class Journal(Recorder):
        def record(self, record: dict[str, Any], *, mirror_now: bool = True) -> None:
            if record["status"] != "sending":
                order.append(f"record {record['index']}")
            super().record(record, mirror_now=mirror_now)

    recorder = Journal()
    runner = ConcurrentRunner(
        send, recorder, RunnerSettings(concurrency=3), Progress(6, 0, LOG, interval=3600), LOG
    )
    runner.run(_rows(6))
    first_record = order.index(next(event for event in order if event.startswith("record")))
    assert sorted(order[:first_record]) == [f"send {n}" for n in range(6)]
    assert sorted(record["index"] for record in recorder.records) == list(range(6))


def test_rows_in_flight_never_exceed_the_concurrency() -> None:
    in_flight = 0
    peak = 0
    three_in_flight = asyncio.Event()

    async def send(row: BatchRow) -> dict[str, Any]:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        if in_flight == 3:
            three_in_flight.set()
        if row.index < 3:
            await three_in_flight.wait()  # the first three meet, so three really are in flight together
        await asyncio.sleep(0)
        in_flight -= 1
        return _answer(row)

    _run(send, 40, concurrency=3)
    assert peak == 3


def test_a_safe_upstream_error_is_resent_then_recorded_as_failed_at_the_attempt_cap() -> None:
    attempts: Counter[str] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
        attempts[row.custom_id] += 1
        if row.custom_id == "row-1" and attempts[row.custom_id] <= 2:
            raise OpenRouterUpstreamError("overloaded", status=503)  # answered before generation: not billed
        if row.custom_id == "row-2":
            raise OpenRouterUpstreamError("still down", status=502)
        return _answer(row)

    _, recorder = _run(send, 3, row_retries=3, connection_retries=2)
    records = recorder.by_id()
    assert records["row-1"]["status"] == "succeeded"
    assert records["row-1"]["attempts"] == 3
    assert records["row-2"]["status"] == "failed"
    assert attempts["row-2"] == 6  # the cap: once, then the connection's 2 and the operator's 3 resends
    assert records["row-2"]["attempts"] == 6
    assert records["row-2"]["error"]["billed"] is False
    assert records["row-2"]["error"]["retryable"] is True


def test_a_request_that_never_left_is_resent() -> None:
    attempts: Counter[str] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
        attempts[row.custom_id] += 1
        if attempts[row.custom_id] == 1:
            raise OpenRouterConnectionError("connection refused")
        return _answer(row)

    _, recorder = _run(send, 4)
    assert attempts == Counter({f"row-{n}": 2 for n in range(1, 5)})
    assert {record["status"] for record in recorder.records} == {"succeeded"}


def test_no_resend_after_the_retry_window() -> None:
    attempts: Counter[str] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
        attempts[row.custom_id] += 1
        raise OpenRouterUpstreamError("bad gateway", status=502)

    # The next resend would be due 10 s after the first send, past a window of 5 s: the row fails now.
    _, recorder = _run(send, 1, row_retries=5, backoff=10.0, max_backoff=10.0, retry_window=5.0)
    assert attempts["row-1"] == 1
    assert recorder.by_id()["row-1"]["status"] == "failed"


def test_an_unknown_outcome_is_never_resent() -> None:
    attempts: Counter[str] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
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


def test_an_unknown_outcome_is_resent_when_the_connection_accepts_paying_twice() -> None:
    attempts: Counter[str] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
        attempts[row.custom_id] += 1
        if attempts[row.custom_id] == 1:
            raise OpenRouterOutcomeUnknownError("read timed out")
        return _answer(row)

    _, recorder = _run(send, 2, retry_ambiguous=True)
    assert attempts == Counter({"row-1": 2, "row-2": 2})
    assert {record["status"] for record in recorder.records} == {"succeeded"}


def test_a_429_inside_a_200_body_is_an_unknown_outcome_not_a_rate_limit_to_wait_out() -> None:
    attempts: Counter[str] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
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
    async def send(row: BatchRow) -> dict[str, Any]:
        if row.index == 0:
            raise OpenRouterRequestError("bad temperature", status=400)
        if row.index == 1:
            raise OpenRouterModerationError("flagged", status=403, metadata={"reasons": ["x"]})
        return _answer(row)

    runner, recorder = _run(send, 5, concurrency=1)
    statuses = [recorder.by_id()[f"row-{n}"]["status"] for n in range(1, 6)]
    assert statuses == ["failed", "failed", "succeeded", "succeeded", "succeeded"]
    assert runner.stop_error is None


def test_an_answer_that_does_not_fit_is_failed_and_billed() -> None:
    async def send(row: BatchRow) -> dict[str, Any]:
        return {"id": "gen-odd", "choices": "not a list"}

    _, recorder = _run(send, 1)
    record = recorder.by_id()["row-1"]
    assert record["status"] == "failed"
    assert record["error"]["billed"] is True
    assert record["generation_id"] == "gen-odd"


def test_an_account_error_stops_sending_and_labels_its_row_not_sent() -> None:
    sent: list[int] = []

    async def send(row: BatchRow) -> dict[str, Any]:
        sent.append(row.index)
        if row.index == 2:
            raise OpenRouterInsufficientCreditsError("no credits", status=402)
        return _answer(row)

    runner, recorder = _run(send, 10, concurrency=1)
    assert sent == [0, 1, 2]
    assert isinstance(runner.stop_error, OpenRouterInsufficientCreditsError)
    # (Answers are recorded after the next request has left, so the journal's order is not the rows'.)
    assert sorted((record["index"], record["status"]) for record in recorder.records) == [
        (0, "succeeded"),
        (1, "succeeded"),
        (2, "not_sent"),
    ]
    assert recorder.by_id()["row-3"]["error"]["billed"] is False


def test_a_429_pauses_the_run_and_resends_the_row() -> None:
    attempts: Counter[str] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
        attempts[row.custom_id] += 1
        if row.index == 0 and attempts[row.custom_id] == 1:
            raise OpenRouterRateLimitError("slow down", status=429, retry_after=0.01)
        return _answer(row)

    runner, recorder = _run(send, 20, concurrency=8)
    assert runner.rate_limited == 1
    assert attempts["row-1"] == 2
    assert all(record["status"] == "succeeded" for record in recorder.records)
    assert len(recorder.records) == 20


def test_persistent_429s_never_send_a_row_past_its_attempt_cap() -> None:
    attempts: Counter[str] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
        attempts[row.custom_id] += 1
        raise OpenRouterRateLimitError("slow down", status=429, retry_after=0.001)

    _, recorder = _run(send, 6, concurrency=3, row_retries=2, connection_retries=1)
    assert attempts == Counter({f"row-{n}": 4 for n in range(1, 7)})
    assert {record["status"] for record in recorder.records} == {"failed"}
    assert {record["error"]["status"] for record in recorder.records} == {429}


def test_after_a_429_one_probe_at_a_time_until_one_gets_through() -> None:
    pacer = Pacer(None, backoff=1.0, max_backoff=60.0)
    now = 100.0
    assert pacer.admit(now) == (0.0, False)
    until = pacer.rate_limited_by(
        OpenRouterRateLimitError("429", status=429, retry_after=2.0), now, probe=False
    )
    assert until == 102.0
    assert pacer.wait_needed(101.0) == 1.0  # paused: nobody goes
    assert pacer.admit(102.0) == (0.0, True)  # the probe
    assert pacer.wait_needed(102.0) == -1.0  # the rest wait for the probe's answer
    pacer.answered(probe=True)
    assert pacer.wait_needed(102.0) == 0.0
    assert pacer.admit(102.0) == (0.0, False)


def test_a_429_of_a_request_sent_before_the_pause_does_not_lengthen_the_backoff() -> None:
    pacer = Pacer(None, backoff=1.0, max_backoff=60.0)
    first = pacer.rate_limited_by(OpenRouterRateLimitError("429", status=429), 0.0, probe=False)
    late = pacer.rate_limited_by(OpenRouterRateLimitError("429", status=429), 0.0, probe=False)
    assert first == late == 1.0  # one round: the first backoff
    pacer.admit(1.0)  # the probe
    assert pacer.rate_limited_by(OpenRouterRateLimitError("429", status=429), 1.0, probe=True) == 3.0
    assert pacer.rate_limited == 3


def test_the_rate_spaces_requests_evenly() -> None:
    pacer = Pacer(600.0, backoff=1.0, max_backoff=60.0)
    delays = [pacer.admit(0.0)[0] for _ in range(4)]
    assert delays == [0.0, 0.1, 0.2, 0.30000000000000004]


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


def test_stop_lets_the_rows_in_flight_finish_and_sends_no_new_row() -> None:
    sent: list[int] = []
    three_in_flight = threading.Event()
    release = threading.Event()

    async def send(row: BatchRow) -> dict[str, Any]:
        sent.append(row.index)
        if len(sent) == 3:
            three_in_flight.set()
        while not release.is_set():
            await asyncio.sleep(0.001)  # yields to the loop, so the three are in flight together
        return _answer(row)

    runner, recorder = _runner(send, 20, concurrency=3)
    thread = _run_in_background(runner, 20)
    assert three_in_flight.wait(timeout=30)
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


def test_stop_ends_a_429_pause_at_once_and_the_waiting_rows_are_not_sent() -> None:
    attempts: Counter[int] = Counter()

    async def send(row: BatchRow) -> dict[str, Any]:
        attempts[row.index] += 1
        raise OpenRouterRateLimitError("slow down", status=429, retry_after=3600)

    runner, recorder = _runner(send, 5, concurrency=1)
    thread = _run_in_background(runner, 5)
    deadline = time.monotonic() + 30
    while runner.rate_limited == 0 and time.monotonic() < deadline:  # poll: the hour-long pause has begun
        time.sleep(0.01)
    assert runner.rate_limited == 1
    runner.stop()
    thread.join(timeout=30)  # without the stop the pacer would hold the rows for an hour
    assert not thread.is_alive()
    assert attempts == Counter({0: 1})
    assert {r["status"] for r in recorder.records} == {"not_sent"}
    assert 0 in {r["index"] for r in recorder.records}
    assert all(r["error"]["billed"] is False and "stopped" in r["error"]["message"] for r in recorder.records)
    # A row taken but held by the pause never got a sending record: it never left.
    assert [r["index"] for r in recorder.journal if r["status"] == "sending"] == [0]


def test_stop_ends_a_retry_backoff_and_the_row_is_not_sent() -> None:
    first_try = threading.Event()

    async def send(row: BatchRow) -> dict[str, Any]:
        first_try.set()
        raise OpenRouterUpstreamError("bad gateway", status=502)  # not billed, retryable

    runner, recorder = _runner(send, 1, concurrency=1, backoff=3600.0, max_backoff=3600.0)
    thread = _run_in_background(runner, 1)
    assert first_try.wait(timeout=30)
    runner.stop()
    thread.join(timeout=30)  # without the stop the row would wait an hour before its resend
    assert not thread.is_alive()
    assert runner.requests_sent == 1
    assert [(r["index"], r["status"]) for r in recorder.records] == [(0, "not_sent")]
