"""``OpenRouterGenerationTrigger``: waits in the triggerer until one generation's stats exist.

OpenRouter answers ``GET /generation?id=`` with 404 for a while after the completion. This trigger asks again
(only that idempotent GET, never the completion) until the stats appear or the wall-clock deadline passes, so
the task holds no worker slot while it waits, and a triggerer restart that runs it again costs nothing. The
loop is :class:`~airflow_provider_openrouter.triggers.generation_stats.OpenRouterGenerationStatsTrigger`'s
for one id; only the event differs.

Event contract (exactly one event, then the trigger returns): a JSON dict with ``status``, one of
:data:`EVENT_STATUSES`, ``generation_id`` and ``waited_seconds`` (since this trigger started), plus

* ``ready``: ``generation``, the answer's JSON body as received (``{"data": {...}}``), parsed on the worker;
* ``timeout``: ``message`` (still 404 at the deadline);
* ``error``: ``message`` and ``error``, the failure as :meth:`OpenRouterError.to_event` writes it (class
  name, status, code, ``billed``, ``retry_after``, ...), from which the operator rebuilds the same exception
  (401, 402, 403, or the last of ``max_consecutive_errors`` transient failures in a row).
"""

from __future__ import annotations

import time
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_openrouter.triggers.generation_stats import (
    EVENT_STATUSES,
    OpenRouterGenerationStatsTrigger,
)

__all__ = ["EVENT_STATUSES", "OpenRouterGenerationTrigger"]


class OpenRouterGenerationTrigger(OpenRouterGenerationStatsTrigger):
    """Ask ``GET /generation?id=`` every ``poll_interval`` s until it answers 200 or ``end_time`` passes.

    :param openrouter_conn_id: the connection, read in the triggerer (no secret is ever serialized).
    :param generation_id: the generation whose stats are awaited.
    :param poll_interval: seconds between two asks while the answer is 404.
    :param end_time: wall-clock deadline (``time.time()`` seconds), so a triggerer restart keeps the deadline.
    """

    def __init__(
        self, openrouter_conn_id: str, generation_id: str, poll_interval: float, end_time: float
    ) -> None:
        super().__init__(openrouter_conn_id, [generation_id], poll_interval, end_time, max_concurrency=1)
        self.generation_id = generation_id
        self._answer: dict[str, Any] | None = None

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

    def _answered(self, generation_id: str, answer: dict[str, Any]) -> None:
        self._answer = answer

    def _event(self, status: str, ready: list[str], pending: list[str], **fields: Any) -> TriggerEvent:
        if status == "ready":
            fields["generation"] = self._answer
        return TriggerEvent(
            {
                "status": status,
                "generation_id": self.generation_id,
                "waited_seconds": round(time.time() - self._started, 3),
                **fields,
            }
        )
