"""``OpenRouterGenerationTrigger``: waits in the triggerer until a generation's stats exist.

OpenRouter answers ``GET /generation?id=`` with 404 for a while after the completion. This trigger asks again
(only that idempotent GET, never the completion) until the stats appear or the wall-clock deadline passes, so
the task holds no worker slot while it waits, and a triggerer restart that runs it again costs nothing.

Event contract (exactly one event, then the trigger returns): a JSON dict with ``status``, one of
:data:`EVENT_STATUSES`, ``generation_id`` and ``waited_seconds`` (since this trigger started), plus

* ``ready``: ``generation``, the answer's JSON body as received (``{"data": {...}}``), parsed on the worker;
* ``timeout``: ``message`` (still 404 at the deadline);
* ``error``: ``message`` and ``error``, the failure as :meth:`OpenRouterError.to_event` writes it (class
  name, status, code, ``billed``, ``retry_after``, ...), from which the operator rebuilds the same exception
  (401, 402, 403, or the last of ``max_consecutive_errors`` transient failures in a row).
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


class OpenRouterGenerationTrigger(OpenRouterPollingTrigger):
    """Ask ``GET /generation?id=`` every ``poll_interval`` s until it answers 200 or ``end_time`` passes.

    :param openrouter_conn_id: the connection, read in the triggerer (no secret is ever serialized).
    :param generation_id: the generation whose stats are awaited.
    :param poll_interval: seconds between two asks while the answer is 404.
    :param end_time: wall-clock deadline (``time.time()`` seconds), so a triggerer restart keeps the deadline.
    """

    def __init__(
        self, openrouter_conn_id: str, generation_id: str, poll_interval: float, end_time: float
    ) -> None:
        super().__init__()
        self._started = time.time()
        self.openrouter_conn_id = openrouter_conn_id
        self.generation_id = generation_id
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            self.classpath,
            {
                "openrouter_conn_id": self.openrouter_conn_id,
                "generation_id": self.generation_id,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    def _event(self, status: str, **fields: Any) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "generation_id": self.generation_id,
                "waited_seconds": round(time.time() - self._started, 3),
                **fields,
            }
        )

    def _error(self, err: OpenRouterError) -> TriggerEvent:
        return self._event("error", message=str(err), error=err.to_event())

    def _connection_error(self, err: OpenRouterError) -> TriggerEvent:
        return self._error(err)

    async def _poll(self, transport: Any) -> TriggerEvent:
        errors_in_a_row = 0
        asks = 0
        while True:
            asks += 1
            try:
                answer = await transport.get("/generation", {"id": self.generation_id})
                return self._event("ready", generation=answer)
            except OpenRouterNotFoundError:
                errors_in_a_row = 0
            except (
                OpenRouterAuthenticationError,
                OpenRouterPermissionError,
                OpenRouterInsufficientCreditsError,
            ) as err:
                return self._error(err)
            except OpenRouterError as err:
                errors_in_a_row += 1
                if self._too_many_errors(errors_in_a_row, f"asking for generation {self.generation_id}", err):
                    return self._error(err)
            remaining = self.end_time - time.time()
            if remaining <= 0:
                return self._event(
                    "timeout",
                    message=f"generation {self.generation_id} still had no stats (404) after {asks} asks "
                    f"over {time.time() - self._started:.0f} s",
                )
            pause = min(self.poll_interval, remaining)
            self.log.info("no stats for generation %s yet; asking again in %.1f s", self.generation_id, pause)
            await asyncio.sleep(pause)
