"""``OpenRouterGenerationStatsTrigger``: waits in the triggerer until ``GET /generation`` has the stats of
every one of many ids (the deferred half of
:class:`~airflow_provider_openrouter.sensors.generation.OpenRouterGenerationSensor`). Its polling loop is
also the one of :class:`~airflow_provider_openrouter.triggers.generation.OpenRouterGenerationTrigger`, which
waits for one id and hands its answer to the get-generation operator.

Each round asks every id still answering 404 (concurrently, at most ``max_concurrency`` at a time; the async
transport paces them to the connection's rate limit), then sleeps ``poll_interval`` seconds, until all are
ready or the wall-clock ``end_time`` passes. Only this idempotent GET is sent.

Event contract (exactly one event, then the trigger returns): a JSON dict with ``status`` (one of
:data:`EVENT_STATUSES`), ``ready`` and ``pending`` (id lists), ``waited_seconds``, plus ``message`` for
``timeout`` and ``error``, and ``error`` (:meth:`OpenRouterError.to_event`) for ``error``: a 401/402/403, or
``max_consecutive_errors`` rounds in a row that failed other than with 404. Subclasses shape the event
(:meth:`OpenRouterGenerationStatsTrigger._event`) and may keep the answers (``_answered``).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterNotFoundError,
    OpenRouterPermissionError,
)
from airflow_provider_openrouter.triggers import OpenRouterPollingTrigger

EVENT_STATUSES = frozenset({"ready", "timeout", "error"})
_FATAL = (OpenRouterAuthenticationError, OpenRouterPermissionError, OpenRouterInsufficientCreditsError)


class OpenRouterGenerationStatsTrigger(OpenRouterPollingTrigger):
    """Ask ``GET /generation?id=`` for each of ``generation_ids`` until every one answers 200 or ``end_time``.

    :param openrouter_conn_id: the connection, read in the triggerer (no secret is serialized).
    :param generation_ids: the ids whose stats are awaited.
    :param poll_interval: seconds between two rounds.
    :param end_time: wall-clock deadline (``time.time()`` seconds), kept across a triggerer restart.
    :param max_concurrency: at most this many requests in flight.
    """

    def __init__(
        self,
        openrouter_conn_id: str,
        generation_ids: list[str],
        poll_interval: float,
        end_time: float,
        max_concurrency: int = 8,
    ) -> None:
        super().__init__()
        self._started = time.time()
        self.openrouter_conn_id = openrouter_conn_id
        self.generation_ids = list(generation_ids)
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)
        self.max_concurrency = max(1, int(max_concurrency))

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            self.classpath,
            {
                "openrouter_conn_id": self.openrouter_conn_id,
                "generation_ids": self.generation_ids,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "max_concurrency": self.max_concurrency,
            },
        )

    def _event(self, status: str, ready: list[str], pending: list[str], **fields: Any) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "ready": ready,
                "pending": pending,
                "waited_seconds": round(time.time() - self._started, 3),
                **fields,
            }
        )

    def _answered(self, generation_id: str, answer: dict[str, Any]) -> None:
        """One id's stats arrived; the answer is dropped (the sensor reads the stats again on its worker)."""

    def _connection_error(self, err: OpenRouterError) -> TriggerEvent:
        return self._event("error", [], list(self.generation_ids), message=str(err), error=err.to_event())

    async def _poll(self, transport: Any) -> TriggerEvent:
        pending = list(dict.fromkeys(self.generation_ids))
        ready: list[str] = []
        limit = asyncio.Semaphore(self.max_concurrency)
        errors_in_a_row = 0
        rounds = 0

        async def ask(generation_id: str) -> OpenRouterError | None:
            async with limit:
                try:
                    self._answered(generation_id, await transport.get("/generation", {"id": generation_id}))
                    return None
                except OpenRouterError as err:
                    return err

        while True:
            rounds += 1
            outcomes = await asyncio.gather(*(ask(generation_id) for generation_id in pending))
            still: list[str] = []
            failure: OpenRouterError | None = None
            for generation_id, err in zip(pending, outcomes, strict=True):
                if err is None:
                    ready.append(generation_id)
                    continue
                still.append(generation_id)
                if isinstance(err, _FATAL):
                    return self._event("error", ready, still, message=str(err), error=err.to_event())
                if not isinstance(err, OpenRouterNotFoundError):
                    failure = err
            pending = still
            if not pending:
                return self._event("ready", ready, [])
            if failure is None:
                errors_in_a_row = 0
            else:
                errors_in_a_row += 1
                if self._too_many_errors(errors_in_a_row, "asking for generation stats", failure):
                    return self._event(
                        "error", ready, pending, message=str(failure), error=failure.to_event()
                    )
            remaining = self.end_time - time.time()
            if remaining <= 0:
                return self._event(
                    "timeout",
                    ready,
                    pending,
                    message=f"{len(pending)} generation(s) still had no stats (404) after {rounds} round(s) "
                    f"over {time.time() - self._started:.0f} s: {', '.join(pending[:5])}",
                )
            pause = min(self.poll_interval, remaining)
            self.log.info("%d generation(s) have no stats yet; asking again in %.1f s", len(pending), pause)
            await asyncio.sleep(pause)
