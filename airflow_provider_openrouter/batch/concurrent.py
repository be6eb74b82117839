"""The concurrent runner: bounded fan-out of chat completions, one checkpointed record per finished row.

``concurrency`` worker threads share one transport (one pooled HTTP session and the connection's rate limiter)
and pull rows from one lazy iterator, so memory does not grow with the input.

What happens to a row (the transport has already retried what was safe inside one call):

==========================================================  ===============================================
the call ends with                                          the runner
==========================================================  ===============================================
a chat completion                                           records ``succeeded``
``OpenRouterRateLimitError`` (429 after the transport's     pauses the whole pool for ``retry_after`` (or an
retries)                                                    exponential backoff), halves the number of rows in
                                                            flight, then sends the row again (429s are not
                                                            billed); each success after that lets one more in
an error in OpenRouter's envelope (``billed`` is False:     waits with exponential backoff and sends again,
not charged) that a retry may fix (``retryable``: 408,      at most ``row_retries`` times, then records
5xx), after the transport's own resends                     ``failed``
a lost answer (``billed`` is None: timeout after sending,   records ``outcome_unknown``: it may have been
reset, cut or non-JSON body, 524)                           billed, so it is never sent again automatically
any other error (400, 404, moderation ...)                  records ``failed``
401, 402, or a 403 that is not moderation                   stops sending: this row, rows waiting for a retry
                                                            and rows never taken are ``not_sent`` (not
                                                            billed), so a retry sends them once the account
                                                            is fixed
==========================================================  ===============================================

:meth:`ConcurrentRunner.stop` (the operator's ``on_kill``) stops sending the same way: rows in flight finish
and are recorded, rows waiting for the gate or a retry are ``not_sent``, no new row is taken.

Before a row's first request goes out, a ``sending`` record reaches the checkpoint; its outcome record follows
before the worker takes its next row. A worker killed in between leaves the row ``outcome_unknown``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any, Protocol

from airflow_provider_openrouter.batch._log import Log
from airflow_provider_openrouter.batch.engine import BatchJob
from airflow_provider_openrouter.batch.inputs import BatchRow
from airflow_provider_openrouter.batch.manifest import BatchManifest, Tally
from airflow_provider_openrouter.batch.outputs import (
    FAILED,
    NOT_SENT,
    OUTCOME_UNKNOWN,
    error_info,
    failure_record,
    sending_record,
    success_record,
)
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterModerationError,
    OpenRouterPermissionError,
    OpenRouterRateLimitError,
)
from airflow_provider_openrouter.models import ChatCompletion, plain_decimal

SendRow = Callable[[BatchRow], ChatCompletion]
RecordRow = Callable[[dict[str, Any]], None]

_MAX_RATE_LIMIT_ROUNDS = 50


@dataclass(frozen=True)
class RunnerSettings:
    """Knobs of one concurrent run. ``backoff`` is the first wait of the exponential row-retry backoff."""

    concurrency: int = 16
    row_retries: int = 3
    backoff: float = 1.0
    max_backoff: float = 60.0
    progress_interval: float = 30.0


def is_account_error(err: OpenRouterError) -> bool:
    """Errors that every following row would hit as well: stop sending instead of failing them one by one."""
    if isinstance(err, OpenRouterModerationError):
        return False
    return isinstance(
        err, OpenRouterAuthenticationError | OpenRouterInsufficientCreditsError | OpenRouterPermissionError
    )


def is_safe_to_resend(err: OpenRouterError) -> bool:
    """Provably not billed, and a later attempt may succeed."""
    return err.billed is False and err.retryable


class AdaptiveGate:
    """Admits rows into flight: at most ``limit`` at once, and none while a 429 pause lasts.

    ``limit`` starts at the concurrency, halves on every 429 and grows by one per success (AIMD), so a pool
    that overruns the server's limit slows down together instead of every thread hammering on its own.
    """

    def __init__(self, concurrency: int) -> None:
        self._max = concurrency
        self._limit = concurrency
        self._in_flight = 0
        self._paused_until = 0.0
        self._opened = True
        self._cond = threading.Condition()
        self.rate_limited = 0

    def __enter__(self) -> AdaptiveGate:
        with self._cond:
            while True:
                wait = self._paused_until - time.monotonic()
                if not self._opened or (wait <= 0 and self._in_flight < self._limit):
                    self._in_flight += 1
                    return self
                self._cond.wait(timeout=wait if wait > 0 else None)

    def __exit__(self, *exc: object) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify_all()

    def succeeded(self) -> None:
        if self._limit < self._max:
            with self._cond:
                self._limit = min(self._max, self._limit + 1)
                self._cond.notify_all()

    def rate_limited_for(self, seconds: float) -> None:
        with self._cond:
            self.rate_limited += 1
            self._limit = max(1, self._limit // 2)
            self._paused_until = max(self._paused_until, time.monotonic() + seconds)
            self._cond.notify_all()

    def release_waiters(self) -> None:
        """Admit every waiting and later caller at once, so each can see that the run stopped and leave."""
        with self._cond:
            self._opened = False
            self._cond.notify_all()

    @property
    def limit(self) -> int:
        return self._limit


class Progress:
    """Counts finished rows and logs one line per ``interval`` seconds (and a last one at the end)."""

    def __init__(self, total: int, already_done: int, log: Log, interval: float) -> None:
        self.total = total
        self.already_done = already_done
        self.tally = Tally()
        self._log = log
        self._interval = interval
        self._started = time.monotonic()
        self._last_log = self._started
        self._lock = threading.Lock()

    def add(self, record: dict[str, Any]) -> None:
        with self._lock:
            self.tally.add(record)
            now = time.monotonic()
            if now - self._last_log >= self._interval:
                self._last_log = now
                self._log.info("%s", self.line(now))

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

    def final(self) -> None:
        self._log.info("%s (done in %.1fs)", self.line(), time.monotonic() - self._started)


class ConcurrentRunner:
    """Runs rows through ``send`` with bounded concurrency; every outcome goes to ``record``.

    ``send`` returns the chat completion body or raises an ``OpenRouterError``; it must send the row's
    idempotency key itself. ``record`` must make the record durable before returning (the checkpoint).
    """

    def __init__(
        self,
        send: SendRow,
        record: RecordRow,
        settings: RunnerSettings,
        progress: Progress,
        log: Log,
    ) -> None:
        self._send = send
        self._record = record
        self._settings = settings
        self._progress = progress
        self._log = log
        self._gate = AdaptiveGate(settings.concurrency)
        self._rows_lock = threading.Lock()
        self._stop = threading.Event()
        self.stop_error: OpenRouterError | None = None
        self.requests_sent = 0
        self._sent_lock = threading.Lock()
        self._crash: BaseException | None = None

    @property
    def rate_limited(self) -> int:
        """How many times a 429 reached the runner (after the transport's own retries)."""
        return self._gate.rate_limited

    def stop(self) -> None:
        """Send no further request: rows in flight finish and are recorded, every other row ends ``not_sent``.

        Idempotent, never blocks on a request, safe from any thread and from a signal handler (``on_kill``).
        """
        self._stop.set()
        self._gate.release_waiters()

    def run(self, rows: Iterable[BatchRow]) -> None:
        """Send every row of ``rows`` (or until an account error stops the run)."""
        iterator = iter(rows)
        workers = [
            threading.Thread(target=self._worker, args=(iterator,), name=f"openrouter-batch-{n}", daemon=True)
            for n in range(self._settings.concurrency)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if self._crash is not None:
            raise self._crash
        self._progress.final()

    def _next_row(self, iterator: Iterator[BatchRow]) -> BatchRow | None:
        with self._rows_lock:
            if self._stop.is_set():
                return None
            return next(iterator, None)

    def _worker(self, iterator: Iterator[BatchRow]) -> None:
        try:
            while (row := self._next_row(iterator)) is not None:
                record = self._run_row(row)
                if record is None:
                    return
                self._record(record)
                self._progress.add(record)
        except BaseException as err:  # a bug or a checkpoint write failure: stop everyone, re-raise in run()
            self._crash = err
            self.stop()

    def _run_row(self, row: BatchRow) -> dict[str, Any] | None:
        if self._stop.is_set():
            return None
        # Durable before the request leaves: if the worker dies with it in flight, a rerun knows the row
        # may have been billed and does not send it again on its own.
        self._record(sending_record(row.index, row.custom_id))
        attempts = 0
        retries_left = self._settings.row_retries
        rate_limit_rounds = 0
        while True:
            if self._stop.is_set():  # nothing of this row is in flight: it stays unsent for a retry
                return self._not_sent(row, attempts)
            try:
                with self._gate:
                    if self._stop.is_set():  # stopped while this row waited for the gate
                        return self._not_sent(row, attempts)
                    attempts += 1
                    with self._sent_lock:
                        self.requests_sent += 1
                    response = self._send(row)
            except OpenRouterError as err:
                # First, before any resend rule: only a lost answer (timeout after sending, reset, cut or
                # non-JSON body, 524) may have been billed. OpenRouter's error envelope, with an error status
                # or inside a 200, is free (zero-completion insurance), so it follows the rules below.
                if err.billed is None:
                    self._log.warning(
                        "row %s (%s): outcome unknown, not resent (it may have been billed): %s",
                        row.custom_id,
                        row.where,
                        err,
                    )
                    return failure_record(
                        row.index, row.custom_id, OUTCOME_UNKNOWN, _row_error(err), attempts
                    )
                if isinstance(err, OpenRouterRateLimitError):
                    rate_limit_rounds += 1
                    pause = err.retry_after if err.retry_after else self._backoff(rate_limit_rounds)
                    self._gate.rate_limited_for(pause)
                    if rate_limit_rounds < _MAX_RATE_LIMIT_ROUNDS:
                        continue
                    return failure_record(row.index, row.custom_id, FAILED, error_info(err), attempts)
                if is_account_error(err):
                    if not self._stop.is_set():
                        self.stop_error = err
                        self.stop()
                        self._log.error("stopping the batch, no further rows are sent: %s", err)
                    return self._not_sent(row, attempts)
                if is_safe_to_resend(err) and retries_left > 0:
                    retries_left -= 1
                    # A stop ends the wait early; the loop then records the row not_sent.
                    self._stop.wait(self._backoff(self._settings.row_retries - retries_left))
                    continue
                return failure_record(row.index, row.custom_id, FAILED, _row_error(err), attempts)
            self._gate.succeeded()
            return success_record(row.index, row.custom_id, response, attempts)

    def _not_sent(self, row: BatchRow, attempts: int) -> dict[str, Any]:
        """Refused before generation (or never sent), so not billed: a retry sends the row once fixed."""
        error: dict[str, Any] = (
            error_info(self.stop_error)
            if self.stop_error is not None
            else {"message": "the run was stopped before this row was sent"}
        )
        error.update(retryable=True, billed=False)
        return failure_record(row.index, row.custom_id, NOT_SENT, error, attempts)

    def _backoff(self, round_number: int) -> float:
        return float(min(self._settings.max_backoff, self._settings.backoff * 2 ** (round_number - 1)))


class ChatSender(Protocol):
    def send_chat_request(
        self, body: Mapping[str, Any], *, idempotency_key: str | None = None
    ) -> ChatCompletion: ...


def run_job(
    job: BatchJob,
    sender: ChatSender,
    settings: RunnerSettings,
    log: Log,
    *,
    mode_reason: str,
    on_start: Callable[[ConcurrentRunner], None] | None = None,
) -> tuple[BatchManifest, ConcurrentRunner]:
    """Send the pending rows of an opened ``job`` and commit its output.

    ``on_start`` gets the runner before any row is sent (so the caller can :meth:`~ConcurrentRunner.stop` it).
    Returns the manifest and the runner, whose ``stop_error`` is the account error that stopped the run, if
    one did (the output is whole either way: unsent rows are labelled ``not_sent``).
    """

    def send(row: BatchRow) -> ChatCompletion:
        return sender.send_chat_request(job.request_body(row), idempotency_key=job.idempotency_key(row))

    total = job.scanned.total
    pending = job.pending_count()
    # Never more threads than rows to send: a concurrency of 500 for 20 rows starts 20.
    settings = replace(settings, concurrency=max(1, min(settings.concurrency, pending)))
    runner = ConcurrentRunner(
        send,
        job.opened.record,
        settings,
        Progress(total, total - pending, log, settings.progress_interval),
        log,
    )
    if on_start is not None:
        on_start(runner)
    if pending:
        log.info("sending %d of %d rows, at most %d at a time", pending, total, settings.concurrency)
        runner.run(job.pending_rows())
    manifest = job.finish(
        mode="concurrent",
        mode_reason=mode_reason,
        requests_sent=runner.requests_sent,
        stop_error=runner.stop_error,
    )
    return manifest, runner


def _row_error(err: OpenRouterError) -> dict[str, Any]:
    info = error_info(err)
    info["generation_id"] = err.generation_id
    return info
