"""``OpenRouterBatchTrigger``: waits in the triggerer until every submitted batch reaches a terminal status.

It only polls ``GET /batches/{id}`` (idempotent) with the async transport, so a triggerer restart that runs it
again costs nothing; submitting stays on the worker.

Event contract (exactly one event, then the trigger returns): a JSON dict

* ``status``: ``"success"`` (every batch terminal) or ``"error"``;
* ``reason``: machine-readable, one of :data:`EVENT_REASONS`: ``completed``, ``timeout`` (the wall-clock
  deadline passed; the batches keep running), ``polling_error`` (``max_consecutive_errors`` transient failures
  in a row), ``payment_required`` (402: results withheld until credits are added), ``permanent_error`` (401,
  403, 404: waiting cannot help);
* ``batch_ids``, ``statuses`` (last status seen per batch), ``waited_seconds`` (since this trigger started),
  ``message`` (one line, for people).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_openrouter.batch.batch_api import TERMINAL_STATUSES
from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterError,
    OpenRouterInsufficientCreditsError,
    OpenRouterNotFoundError,
    OpenRouterPermissionError,
)
from airflow_provider_openrouter.triggers import DEFAULT_MAX_CONSECUTIVE_ERRORS, OpenRouterPollingTrigger

EVENT_STATUSES = frozenset({"success", "error"})
EVENT_REASONS = frozenset({"completed", "timeout", "polling_error", "payment_required", "permanent_error"})


class OpenRouterBatchTrigger(OpenRouterPollingTrigger):
    """Poll OpenRouter batches until all are terminal or ``end_time`` (epoch seconds, wall clock) passes.

    :param openrouter_conn_id: the connection, read in the triggerer (no secret is ever serialized).
    :param batch_ids: the batches to wait for.
    :param poll_interval: seconds between polling rounds.
    :param end_time: wall-clock deadline (``time.time()`` seconds), so a triggerer restart keeps the deadline.
    :param max_consecutive_errors: transient polling failures in a row that end the wait with an error.
    """

    def __init__(
        self,
        openrouter_conn_id: str,
        batch_ids: list[str],
        poll_interval: float,
        end_time: float,
        max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS,
    ) -> None:
        super().__init__()
        self._started = time.time()
        self.openrouter_conn_id = openrouter_conn_id
        self.batch_ids = list(batch_ids)
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)
        self.max_consecutive_errors = int(max_consecutive_errors)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            self.classpath,
            {
                "openrouter_conn_id": self.openrouter_conn_id,
                "batch_ids": list(self.batch_ids),
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
                "max_consecutive_errors": self.max_consecutive_errors,
            },
        )

    def _event(self, status: str, reason: str, statuses: dict[str, str], message: str) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "reason": reason,
                "batch_ids": list(self.batch_ids),
                "statuses": dict(statuses),
                "waited_seconds": round(time.time() - self._started, 3),
                "message": message,
            }
        )

    def _connection_error(self, err: OpenRouterError) -> TriggerEvent:
        return self._event("error", "permanent_error", {}, str(err))

    async def _poll(self, transport: Any) -> TriggerEvent:
        statuses: dict[str, str] = {}
        waiting = list(self.batch_ids)
        errors_in_a_row = 0
        while True:
            for batch_id in list(waiting):
                try:
                    batch = await transport.get(f"/batches/{batch_id}")
                except OpenRouterInsufficientCreditsError as err:
                    statuses[batch_id] = "payment_required"
                    return self._event("error", "payment_required", statuses, str(err))
                except (
                    OpenRouterAuthenticationError,
                    OpenRouterPermissionError,
                    OpenRouterNotFoundError,
                ) as err:
                    return self._event("error", "permanent_error", statuses, str(err))
                except OpenRouterError as err:
                    errors_in_a_row += 1
                    if self._too_many_errors(errors_in_a_row, f"polling batch {batch_id}", err):
                        return self._event("error", "polling_error", statuses, str(err))
                    break
                errors_in_a_row = 0
                status = str(batch.get("status"))
                statuses[batch_id] = status
                if status in TERMINAL_STATUSES:
                    waiting.remove(batch_id)
            if not waiting:
                return self._event(
                    "success", "completed", statuses, f"{len(self.batch_ids)} batch(es) finished"
                )
            remaining = self.end_time - time.time()
            if remaining <= 0:
                return self._event(
                    "error",
                    "timeout",
                    statuses,
                    f"{len(waiting)} of {len(self.batch_ids)} batch(es) still running at the deadline: "
                    f"{', '.join(waiting)}",
                )
            self.log.info("waiting for %d batch(es): %s", len(waiting), statuses)
            await asyncio.sleep(min(self.poll_interval, remaining))

    async def on_kill(self) -> None:
        """A user killed the deferred task. OpenRouter has no batch cancel operation, so nothing is sent:
        the batches keep running, and a retry of the task re-attaches to them and lands their results."""
        self.log.info(
            "task killed while waiting for batch(es) %s; they keep running and a retry collects them",
            ", ".join(self.batch_ids),
        )
