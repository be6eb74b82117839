"""The concurrent engine: chat completions fanned out on one event loop, one checkpointed record per row.

``concurrency`` coroutines share one ``httpx`` client and one :class:`Pacer`, the only place that decides
when a row may go: the rate (``requests_per_minute``, evenly spaced), the rows in flight (one coroutine per
slot) and the run-wide pause after a 429. Each request is sent exactly once by the transport (no retry
underneath); a retryable answer puts the row back into the one queue of this engine, due after its backoff.

What happens to a row:

==========================================================  ===============================================
the request ends with                                       the engine
==========================================================  ===============================================
a chat completion                                           records ``succeeded`` (``invalid_output`` when an
                                                            ``output_type`` refuses it)
a 429 (OpenRouter's envelope: not billed)                   pauses the whole run for its ``Retry-After`` /
                                                            ``X-RateLimit-Reset`` (else a backoff that doubles
                                                            per 429 round), then lets one request probe the
                                                            limit until one gets through; the row goes back to
                                                            the queue
an error in the envelope that a resend may fix (408, 5xx:   the row goes back to the queue, due after an
``billed`` False and ``retryable``)                         exponential backoff
a lost answer (``billed`` None: timeout after sending,      records ``outcome_unknown``: it may have been
reset, cut or non-JSON body, 524)                           billed, so it is never sent again automatically
any other error (400, 404, moderation ...)                  records ``failed``
401, 402, or a 403 that is not moderation                   stops sending: this row, rows waiting in the
                                                            queue and rows never taken are ``not_sent``
==========================================================  ===============================================

A row is sent at most ``1 + max_retries + row_retries`` times (the connection's ``max_retries``, default 5,
and the operator's ``row_retries``, default 3: at most 9 sends), 429s included, and never again once the
connection's ``max_retry_wait`` (default 300 s) has passed since its first send: it is then recorded
``failed`` with its last error. Nothing retries underneath: the transport sends each request once.

Checkpoint: a row's ``sending`` record is in the kernel (one ``O_APPEND`` write) before its request leaves,
so a worker killed with the request in flight leaves the row ``outcome_unknown``; an answered row's record is
written by one recorder coroutine right after its worker has sent the next request. For an output on an object
store, rows are taken from the input in groups (up to :data:`MIRROR_GROUP_ROWS`, at least the concurrency);
a group's ``sending`` records are uploaded to the mirror as one segment before any request of the group
leaves, and the next group is uploaded while this one is sent. Rows of a group that were not sent when the
run ends get a ``not_sent`` record (a SIGKILL leaves them ``outcome_unknown``, like a row in flight).

:meth:`ConcurrentRunner.stop` (the operator's ``on_kill``) stops sending the same way as an account error.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import heapq
import itertools
import json
import resource
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_openrouter.batch._log import Log
from airflow_provider_openrouter.batch.engine import BatchJob
from airflow_provider_openrouter.batch.inputs import ENDPOINT_PATHS, BatchRow
from airflow_provider_openrouter.batch.manifest import BatchManifest, Tally
from airflow_provider_openrouter.batch.outputs import (
    FAILED,
    NOT_SENT,
    OUTCOME_UNKNOWN,
    SUCCEEDED,
    answer_record,
    error_info,
    failure_record,
    record_cost,
    sending_record,
)
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterModerationError,
    OpenRouterPermissionError,
    OpenRouterRateLimitError,
)
from airflow_provider_openrouter.models import plain_decimal
from airflow_provider_openrouter.transport.billing_rules import may_resend

if TYPE_CHECKING:
    from pydantic import BaseModel

    from airflow_provider_openrouter.batch.checkpoint import Checkpoint
    from airflow_provider_openrouter.transport import TransportSettings

SendRow = Callable[[BatchRow], Awaitable[dict[str, Any]]]
"""Sends one row once and returns the answer's JSON, or raises the transport's ``OpenRouterError``."""
BuildRecord = Callable[[BatchRow, dict[str, Any], int], dict[str, Any]]
"""Turns a row's answer and its attempt count into its output record."""

CHAT_PATH = "/chat/completions"
_LANE: contextvars.ContextVar[int] = contextvars.ContextVar("openrouter_batch_lane", default=0)
"""The number of the worker coroutine a request comes from: its own keep-alive connection (lane)."""
MIRROR_GROUP_ROWS = 1_000
"""The most rows whose ``sending`` records go to an object-store mirror in one upload."""


@dataclass(frozen=True)
class RunnerSettings:
    """Knobs of one concurrent run.

    A row is sent at most :attr:`max_attempts` times (429s included): once, then ``connection_retries`` (the
    connection's ``max_retries``) plus ``row_retries`` (the operator's) more; ``retry_window``: no resend
    once this many seconds have passed since the row's first send (the connection's ``max_retry_wait``);
    ``retry_ambiguous`` (the connection's): resend a lost answer too (it may be paid twice);
    ``backoff``: the first wait of the exponential backoff (per row after a 5xx, run-wide after a 429
    without a reset time), at most ``max_backoff``; ``requests_per_minute``: this run's rate (``None`` or 0:
    the connection's). :func:`run_job` fills the connection's values in when they are ``None``.
    """

    concurrency: int = 16
    row_retries: int = 3
    connection_retries: int | None = None
    retry_window: float | None = None
    retry_ambiguous: bool | None = None
    backoff: float = 1.0
    max_backoff: float = 60.0
    progress_interval: float = 30.0
    requests_per_minute: float | None = None

    @property
    def max_attempts(self) -> int:
        return 1 + (self.connection_retries or 0) + self.row_retries


def is_account_error(err: OpenRouterError) -> bool:
    """Errors that every following row would hit as well: stop sending instead of failing them one by one."""
    if isinstance(err, OpenRouterModerationError):
        return False
    return isinstance(
        err, OpenRouterAuthenticationError | OpenRouterInsufficientCreditsError | OpenRouterPermissionError
    )


class Pacer:
    """When the next request may leave: an even rate, and a run-wide pause with a probe after a 429.

    The rate is a schedule of slots ``60 / requests_per_minute`` apart (GCRA with a burst of one), booked by
    each admitted request. A 429 pauses every request until its reset time; after the pause one request at a
    time probes the limit, and the first answer that is not a 429 opens the run again. A 429 of a request
    that was sent before the pause began does not lengthen the backoff: only one per round counts.
    """

    def __init__(self, requests_per_minute: float | None, backoff: float, max_backoff: float) -> None:
        self._interval = 60.0 / requests_per_minute if requests_per_minute else 0.0
        self._next_slot = 0.0
        self._backoff = backoff
        self._max_backoff = max_backoff
        self._paused_until = 0.0
        self._probing = False
        self._probe_out = False
        self._rounds = 0
        self.rate_limited = 0

    def wait_needed(self, now: float) -> float:
        """Seconds to wait before a request may be admitted now (0: admit with :meth:`admit`)."""
        if now < self._paused_until:
            return self._paused_until - now
        if self._probe_out:
            return -1.0  # wait for the probe's answer
        return 0.0

    def admit(self, now: float) -> tuple[float, bool]:
        """Book the next slot: seconds until it, and whether this request is the probe after a pause."""
        probe = self._probing
        if probe:
            self._probe_out = True
        if not self._interval:
            return 0.0, probe
        slot = max(now, self._next_slot)
        self._next_slot = slot + self._interval
        return slot - now, probe

    def answered(self, *, probe: bool) -> None:
        """Any answer but a 429: a probe that got through opens the run again."""
        if probe or self._probing:
            self._probing = self._probe_out = False
            self._rounds = 0

    def rate_limited_by(self, err: OpenRouterRateLimitError, now: float, *, probe: bool) -> float:
        """Pause the run for the reset time the 429 gave (else the backoff); return when the row is due."""
        self.rate_limited += 1
        if probe or not self._probing:
            self._rounds += 1
            self._probing = True
        if probe:
            self._probe_out = False
        pause = err.retry_after or min(self._max_backoff, self._backoff * 2 ** (self._rounds - 1))
        self._paused_until = max(self._paused_until, now + pause)
        # Booked slots before the pause are void: the schedule restarts when it ends.
        self._next_slot = max(self._next_slot, self._paused_until)
        return self._paused_until


class Progress:
    """Counts finished rows; the engine logs :meth:`line` every ``interval`` seconds and at the end."""

    def __init__(self, total: int, already_done: int, log: Log, interval: float) -> None:
        self.total = total
        self.already_done = already_done
        self.tally = Tally()
        self.interval = interval
        self._log = log
        self._started = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        self.tally.add(record)

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        finished_now = self.tally.done
        done = self.already_done + finished_now
        elapsed = max(now - self._started, 1e-9)
        rate = finished_now / elapsed
        remaining = self.total - done
        eta = f"{remaining / rate:.0f}s" if rate > 0 else "unknown"
        failures = self.tally.outcomes[FAILED]
        unknown = self.tally.outcomes[OUTCOME_UNKNOWN]
        return (
            f"batch progress: {done}/{self.total} rows ({100.0 * done / max(self.total, 1):.1f}%), "
            f"{failures} failed, {unknown} outcome unknown, {self.tally.total_tokens} tokens, "
            f"cost {plain_decimal(self.tally.cost.normalize())} USD, "
            f"{rate:.1f} rows/s, ETA {eta}"
        )

    def log_line(self) -> None:
        self._log.info("%s", self.line())

    def final(self) -> None:
        self._log.info("%s (done in %.1fs)", self.line(), time.monotonic() - self._started)


class Journal(Protocol):
    """Where the engine's records go: the checkpoint (or a test's recorder)."""

    def record(self, record: dict[str, Any], *, mirror_now: bool = True) -> None: ...


class Reservation(Protocol):
    """A row's hold on a budget (:mod:`airflow_provider_openrouter.budget`), closed by its outcome."""

    def settle(self, cost: Decimal, generation_id: str | None = None) -> None: ...

    def release(self) -> None: ...

    def keep(self, generation_id: str | None = None) -> None: ...


Reserve = Callable[[BatchRow], Reservation]
"""Reserves a row's worst-case cost before its first send; raises ``BudgetExhaustedError`` when it does not
fit (an ``OpenRouterError`` that was not billed: the run stops sending, the rest is ``not_sent``)."""


@dataclass
class _Pending:
    """A row on its way: how often it was sent, when it was first sent, and its budget reservation."""

    row: BatchRow
    attempts: int = 0
    first_sent: float = 0.0
    reservation: Reservation | None = None


class ConcurrentRunner:
    """Runs rows through ``send``, ``concurrency`` at a time on one event loop; outcomes go to ``journal``.

    ``send`` sends a row once (with its idempotency key) and returns the answer's JSON or raises an
    ``OpenRouterError``; ``build_record`` makes the output record of an answer. ``journal.record`` must make a
    record durable against SIGKILL before it returns (the checkpoint). With ``mirror``, a checkpoint with an
    object-store mirror, rows' ``sending`` records are uploaded in groups before their requests leave.
    """

    def __init__(
        self,
        send: SendRow,
        journal: Journal,
        settings: RunnerSettings,
        progress: Progress,
        log: Log,
        *,
        build_record: BuildRecord | None = None,
        mirror: Checkpoint | None = None,
        reserve: Reserve | None = None,
    ) -> None:
        self._send = send
        self._journal = journal
        self._settings = settings
        self._progress = progress
        self._log = log
        self._build_record = build_record or answer_record
        self._mirror = mirror
        self._reserve = reserve
        self._pacer = Pacer(settings.requests_per_minute, settings.backoff, settings.max_backoff)
        self._max_attempts = settings.max_attempts
        self._retry_window = 300.0 if settings.retry_window is None else settings.retry_window
        self._retry_ambiguous = bool(settings.retry_ambiguous)
        self._stopped = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._changed: asyncio.Event | None = None
        self._due: list[tuple[float, int, _Pending]] = []  # rows waiting for a resend, by due time
        self._order = itertools.count()
        self._ready: deque[BatchRow] = deque()  # rows taken from the input, sending record written
        self._rows: Iterator[BatchRow] = iter(())
        self._exhausted = False
        # Answers waiting for their records, written once the workers' next requests have left.
        self._answered: deque[tuple[_Pending, dict[str, Any]]] = deque()
        self._answers: asyncio.Event | None = None
        self._sending_done = False
        self.stop_error: OpenRouterError | None = None
        self.requests_sent = 0

    @property
    def concurrency(self) -> int:
        """Requests this run keeps in flight at most (never more than the rows it had to send)."""
        return self._settings.concurrency

    @property
    def rate_limited(self) -> int:
        """How many 429s the run met (each paused the whole run)."""
        return self._pacer.rate_limited

    def stop(self) -> None:
        """Send no further request: rows in flight finish and are recorded, every other row ends ``not_sent``.

        Idempotent, never blocks, safe from any thread and from a signal handler (``on_kill``).
        """
        self._stopped.set()
        loop, changed = self._loop, self._changed
        if loop is not None and changed is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already closed: nothing left to wake
                loop.call_soon_threadsafe(changed.set)

    def run(self, rows: Iterable[BatchRow], *, cleanup: Callable[[], Awaitable[None]] | None = None) -> None:
        """Send every row of ``rows`` (or until an account error or :meth:`stop` ends the run) on a new event
        loop; ``cleanup`` (closing the HTTP client) runs on that loop at the end, however the run ended."""

        async def main() -> None:
            try:
                await self.run_async(rows)
            finally:
                if cleanup is not None:
                    await cleanup()

        with asyncio.Runner(loop_factory=_loop_factory()) as runner:
            runner.run(main())

    async def run_async(self, rows: Iterable[BatchRow]) -> None:
        self._loop = asyncio.get_running_loop()
        self._changed = asyncio.Event()
        self._answers = asyncio.Event()
        if self._stopped.is_set():
            self._changed.set()
        self._rows = iter(rows)
        _allow_open_files(self._settings.concurrency)
        progress = asyncio.create_task(self._log_progress())
        feeder = asyncio.create_task(self._feed()) if self._mirror is not None else None
        recorder = asyncio.create_task(self._record_answers())
        try:
            workers = [asyncio.create_task(self._worker(n)) for n in range(self._settings.concurrency)]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                self.stop()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
            finally:
                self._sending_done = True
                self._answers.set()
                await recorder
        finally:
            progress.cancel()
            if feeder is not None:
                feeder.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await feeder
            self._release_unsent()
        self._progress.final()

    # -- taking rows -----------------------------------------------------------------------------------------

    async def _wait(self, seconds: float | None) -> None:
        """Sleep until ``seconds`` pass (None: until something changes) or anything changes; never raises."""
        assert self._changed is not None
        self._changed.clear()
        # asyncio.timeout, not wait_for: wait_for can swallow a cancellation that meets its own timeout.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._changed.wait()

    def _wake(self) -> None:
        assert self._changed is not None
        self._changed.set()

    def _fresh_row(self) -> BatchRow | None:
        if self._mirror is not None:
            return self._ready.popleft() if self._ready else None
        if self._exhausted:
            return None
        row = next(self._rows, None)
        if row is None:
            self._exhausted = True
        return row

    async def _next(self) -> _Pending | None:
        """The next row to send: a resend that is due, else a fresh row; None when nothing is left."""
        while not self._stopped.is_set():
            now = time.monotonic()
            if self._due and self._due[0][0] <= now:
                return heapq.heappop(self._due)[2]
            row = self._fresh_row()
            if row is not None:
                return _Pending(row)
            if self._mirror is not None and not self._exhausted:
                await self._wait(None)  # the feeder is uploading the next group
            elif self._due:
                await self._wait(self._due[0][0] - now)
            else:
                return None  # a row still in flight that needs a resend is resent by its own worker
        return None

    async def _feed(self) -> None:
        """Keep the next group of rows ready, their ``sending`` records uploaded to the mirror first; once
        the input is taken, upload the outcome records every ``mirror_interval`` seconds."""
        mirror = self._mirror
        assert mirror is not None
        group = min(MIRROR_GROUP_ROWS, self._settings.concurrency)
        uploaded = time.monotonic()
        while not self._stopped.is_set():
            if not self._exhausted and len(self._ready) < group:
                rows = list(itertools.islice(self._rows, group))
                mirror.record_many([sending_record(row.index, row.custom_id) for row in rows])
                await asyncio.to_thread(mirror.upload_pending)
                uploaded = time.monotonic()
                self._ready.extend(rows)
                # Only now: a worker that finds the input exhausted and nothing ready ends.
                self._exhausted = len(rows) < group
                self._wake()
                continue
            due = uploaded + mirror.mirror_interval - time.monotonic()
            if due <= 0:
                await asyncio.to_thread(mirror.upload_pending)
                uploaded = time.monotonic()
            elif self._exhausted:
                await self._wait_uninterrupted(due)
            else:
                await self._wait(due)

    # -- sending ---------------------------------------------------------------------------------------------

    async def _admit(self) -> bool | None:
        """Wait for the pacer; True when this request is the probe after a 429 pause, None when stopped."""
        while not self._stopped.is_set():
            now = time.monotonic()
            wait = self._pacer.wait_needed(now)
            if wait:
                await self._wait(wait if wait > 0 else None)
                continue
            delay, probe = self._pacer.admit(now)
            if delay > 0:
                await self._wait_uninterrupted(delay)
                if self._stopped.is_set():
                    if probe:
                        self._pacer.answered(probe=True)
                    return None
            return probe
        return None

    async def _wait_uninterrupted(self, seconds: float) -> None:
        """Sleep for a booked rate slot; only a stop ends it early."""
        deadline = time.monotonic() + seconds
        while not self._stopped.is_set() and (left := deadline - time.monotonic()) > 0:
            await self._wait(left)

    async def _worker(self, number: int) -> None:
        _LANE.set(number)
        answers = self._answers
        assert answers is not None
        while (pending := await self._next()) is not None:
            probe = await self._admit()
            if probe is None:
                self._finish(self._not_sent(pending), pending)
                break
            if not pending.attempts and self._reserve is not None:
                try:  # the budget's worst case of this row, held until its outcome settles it
                    pending.reservation = self._reserve(pending.row)
                except OpenRouterError as err:  # exhausted: nothing was sent, nothing more is sent
                    self._pacer.answered(probe=probe)
                    self._stop_for(err)
                    self._finish(self._not_sent(pending), pending)
                    break
            if not pending.attempts and self._mirror is None:
                # Durable before the request leaves: if the worker dies with it in flight, a rerun knows the
                # row may have been billed and does not send it again on its own. (A mirrored row's record
                # went up with its group.)
                self._journal.record(
                    sending_record(pending.row.index, pending.row.custom_id), mirror_now=False
                )
            now = time.monotonic()
            pending.attempts += 1
            pending.first_sent = pending.first_sent or now
            self.requests_sent += 1
            try:
                answer = await self._send(pending.row)
            except OpenRouterError as err:
                self._failed(pending, err, probe=probe)
            else:
                self._pacer.answered(probe=probe)
                if pending.reservation is None:
                    self._answered.append((pending, answer))
                    answers.set()
                else:  # the next reservation must find this row's cost settled, not its worst case held
                    self._finish(self._answer_record(pending, answer), pending)
            finally:
                self._wake()

    async def _record_answers(self) -> None:
        """Record the answered rows, after the workers that got them have sent their next requests.

        When a burst of answers arrives together (rows sent together come back together), each worker sends
        its next request first and the bookkeeping of the burst (record, checkpoint) follows: at
        latency L the next round then starts a few milliseconds after the last answer, not after every
        answer's records. A row answered and not yet recorded when the worker dies stays ``sending`` in the
        checkpoint, so a rerun counts it as outcome unknown, as for a row in flight. A row holding a budget
        reservation is recorded by its worker at once instead: the next row's reservation must find its cost
        settled, not its worst case still held.
        """
        answers = self._answers
        assert answers is not None
        try:
            while True:
                while self._answered:
                    pending, answer = self._answered.popleft()
                    self._finish(self._answer_record(pending, answer), pending)
                if self._sending_done:
                    return
                answers.clear()
                await answers.wait()
        except BaseException:
            self.stop()  # an answer that cannot be recorded: send nothing more that could not be either
            raise

    def _answer_record(self, pending: _Pending, answer: dict[str, Any]) -> dict[str, Any]:
        row = pending.row
        try:
            return self._build_record(row, answer, pending.attempts)
        except OpenRouterError as err:  # the answer does not fit: billed, so never resent
            return failure_record(row.index, row.custom_id, FAILED, _row_error(err), pending.attempts)

    def _failed(self, pending: _Pending, err: OpenRouterError, *, probe: bool) -> None:
        now = time.monotonic()
        if isinstance(err, OpenRouterRateLimitError) and err.billed is False:
            due = self._pacer.rate_limited_by(err, now, probe=probe)
        else:
            self._pacer.answered(probe=probe)
            if is_account_error(err):
                self._stop_for(err)
                self._finish(self._not_sent(pending), pending)
                return
            # The money rule: only a request that provably did not run (never sent, or OpenRouter's error
            # envelope, which zero-completion insurance makes free) is sent again; a lost answer only when
            # the connection's retry_ambiguous accepts paying twice.
            if not may_resend(err, retry_ambiguous=self._retry_ambiguous):
                self._finish(self._final_failure(pending, err), pending)
                return
            due = now + self._backoff(pending.attempts)
        if pending.attempts >= self._max_attempts or due - pending.first_sent > self._retry_window:
            self._finish(self._final_failure(pending, err), pending)
            return
        heapq.heappush(self._due, (due, next(self._order), pending))

    def _final_failure(self, pending: _Pending, err: OpenRouterError) -> dict[str, Any]:
        row = pending.row
        if err.billed is None:
            self._log.warning(
                "row %s (%s): outcome unknown, not resent (it may have been billed): %s",
                row.custom_id,
                row.where,
                err,
            )
            status = OUTCOME_UNKNOWN
        else:
            status = FAILED
        return failure_record(row.index, row.custom_id, status, _row_error(err), pending.attempts)

    def _stop_for(self, err: OpenRouterError) -> None:
        if not self._stopped.is_set():
            self.stop_error = err
            self.stop()
            self._log.error("stopping the batch, no further rows are sent: %s", err)

    def _finish(self, record: dict[str, Any], pending: _Pending | None = None) -> None:
        self._journal.record(record, mirror_now=False)
        self._progress.add(record)
        reservation = pending.reservation if pending is not None else None
        if reservation is not None:
            _close_reservation(reservation, record)

    def _not_sent(self, pending: _Pending) -> dict[str, Any]:
        """Refused before generation (or never sent), so not billed: a retry sends the row once fixed."""
        error: dict[str, Any] = (
            error_info(self.stop_error)
            if self.stop_error is not None
            else {"message": "the run was stopped before this row was sent"}
        )
        error.update(retryable=True, billed=False)
        return failure_record(pending.row.index, pending.row.custom_id, NOT_SENT, error, pending.attempts)

    def _release_unsent(self) -> None:
        """Rows waiting for a resend, and rows of an uploaded group never sent, are recorded ``not_sent``."""
        while self._due:
            waiting = heapq.heappop(self._due)[2]
            self._finish(self._not_sent(waiting), waiting)
        while self._ready:
            self._finish(self._not_sent(_Pending(self._ready.popleft())))

    def _backoff(self, attempts: int) -> float:
        return float(min(self._settings.max_backoff, self._settings.backoff * 2 ** (attempts - 1)))

    async def _log_progress(self) -> None:
        while True:
            await asyncio.sleep(self._progress.interval)
            self._progress.log_line()


def _close_reservation(reservation: Reservation, record: dict[str, Any]) -> None:
    """Spend what the row cost, free what provably was not charged, keep a lost answer's whole hold."""
    error = record.get("error") or {}
    generation_id = record.get("generation_id")
    if record["status"] == SUCCEEDED or (record.get("cost") is not None and error.get("billed") is not False):
        reservation.settle(record_cost(record), generation_id)
    elif error.get("billed") is False:
        reservation.release()
    else:  # outcome unknown, or billed at a cost not reported: the cost audit settles it later
        reservation.keep(generation_id)


def _row_error(err: OpenRouterError) -> dict[str, Any]:
    info = error_info(err)
    info["generation_id"] = err.generation_id
    return info


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop when installed (it comes with uvicorn's extras): its loop costs less per request."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def _allow_open_files(concurrency: int) -> None:
    """Raise the soft limit of open files towards the hard one when the connections need it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = concurrency + 256
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(hard, wanted)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


class EngineHook(Protocol):
    """What the engine needs of the operator's hook: the connection's transport settings."""

    @property
    def settings(self) -> TransportSettings: ...


class RowSender:
    """Sends one row of ``job`` once through the async transport, with the row's idempotency key."""

    def __init__(self, job: BatchJob, settings: TransportSettings, max_connections: int) -> None:
        from airflow_provider_openrouter.transport import AsyncOpenRouterTransport

        self._job = job
        self._transport = AsyncOpenRouterTransport(settings, max_connections=max_connections)
        self._encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode

    async def __call__(self, row: BatchRow) -> dict[str, Any]:
        job = self._job
        content = self._encode(job.request_body(row)).encode()
        path = ENDPOINT_PATHS[job.spec.endpoint]
        return await self._transport.post_once(
            path, content, idempotency_key=job.idempotency_key(row), lane=_LANE.get()
        )

    async def aclose(self) -> None:
        await self._transport.aclose()


def run_job(
    job: BatchJob,
    hook: EngineHook,
    settings: RunnerSettings,
    log: Log,
    *,
    mode_reason: str,
    on_start: Callable[[ConcurrentRunner], None] | None = None,
    output_type: type[BaseModel] | None = None,
    reserve: Reserve | None = None,
) -> tuple[BatchManifest, ConcurrentRunner]:
    """Send the pending rows of an opened ``job`` through the async transport and commit its output.

    ``output_type`` validates chat answers (an answer that does not fit is ``invalid_output``); ``reserve``
    holds each row's worst case on a budget before its first send (see :data:`Reserve`).

    ``on_start`` gets the runner before any row is sent (so the caller can :meth:`~ConcurrentRunner.stop` it).
    Returns the manifest and the runner, whose ``stop_error`` is the account error that stopped the run, if
    one did (the output is whole either way: unsent rows are labelled ``not_sent``).
    """
    total = job.scanned.total
    pending = job.pending_count()
    checkpoint = job.opened
    connection = hook.settings
    # Never more coroutines (and connections) than rows to send: a concurrency of 500 for 20 rows starts 20.
    settings = replace(
        settings,
        concurrency=max(1, min(settings.concurrency, pending)),
        requests_per_minute=settings.requests_per_minute or connection.requests_per_minute or None,
        connection_retries=(
            connection.max_retries if settings.connection_retries is None else settings.connection_retries
        ),
        retry_window=connection.max_retry_wait if settings.retry_window is None else settings.retry_window,
        retry_ambiguous=(
            connection.retry_ambiguous if settings.retry_ambiguous is None else settings.retry_ambiguous
        ),
    )
    sender = RowSender(job, connection, settings.concurrency)
    runner = ConcurrentRunner(
        sender,
        checkpoint,
        settings,
        Progress(total, total - pending, log, settings.progress_interval),
        log,
        build_record=partial(answer_record, endpoint=job.spec.endpoint, output_type=output_type),
        mirror=checkpoint if checkpoint.mirrored else None,
        reserve=reserve,
    )
    if on_start is not None:
        on_start(runner)
    if pending:
        log.info("sending %d of %d rows, at most %d at a time", pending, total, settings.concurrency)
        runner.run(job.pending_rows(), cleanup=sender.aclose)
    manifest = job.finish(
        mode="concurrent",
        mode_reason=mode_reason,
        requests_sent=runner.requests_sent,
        stop_error=runner.stop_error,
    )
    return manifest, runner
