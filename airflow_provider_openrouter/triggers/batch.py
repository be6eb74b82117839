"""``OpenRouterBatchTrigger``: waits in the triggerer until every submitted batch reaches a terminal status.

It only reads (idempotent GETs) with the async transport, so a triggerer restart that runs it again costs
nothing; submitting stays on the worker. It reads statuses from the list ``GET /batches``, whose items never
carry results, newest first, one page of 100 batches per request, never from ``GET /batches/{id}``: a
terminal batch's answer there holds every result inline (5,000 of them are megabytes of JSON), and parsing it
holds the GIL (so no thread helps) and stalls the event loop that every other trigger shares for a quarter
of a second. The task lands the results on the worker. Only a batch the list does not show (deleted, or beyond
:data:`MAX_LIST_PAGES` pages of newer batches) is asked for by id.

Event contract (exactly one event, then the trigger returns): a JSON dict

* ``status``: ``"success"`` (every batch terminal) or ``"error"``;
* ``reason``: machine-readable, one of :data:`EVENT_REASONS`: ``completed``, ``timeout`` (the wall-clock
  deadline passed; the batches keep running), ``polling_error`` (``max_consecutive_errors`` transient failures
  in a row), ``payment_required`` (402: results withheld until credits are added), ``permanent_error`` (401,
  403, 404: waiting cannot help);
* ``batch_ids``, ``statuses`` (last status seen per batch), ``waited_seconds`` (since this trigger started),
  ``message`` (one line, for people);
* ``error``: on ``polling_error``, ``payment_required`` and ``permanent_error``, the failure as
  :meth:`OpenRouterError.to_event` writes it (class name, status, code, ``billed``, ``retry_after``, ...),
  from which the operator rebuilds the same exception, so a deferred task fails or retries as one that
  polled on the worker would; otherwise ``None``.
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
LIST_PAGE_SIZE = 100
MAX_LIST_PAGES = 50
"""Pages of ``GET /batches`` read per polling round at most (5,000 batches newer than the oldest awaited one):
a bound against a server that pages forever; a batch further back is asked for by id."""


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

    def _event(
        self,
        status: str,
        reason: str,
        statuses: dict[str, str],
        message: str,
        error: OpenRouterError | None = None,
    ) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": status,
                "reason": reason,
                "batch_ids": list(self.batch_ids),
                "statuses": dict(statuses),
                "waited_seconds": round(time.time() - self._started, 3),
                "message": message,
                "error": error.to_event() if error is not None else None,
            }
        )

    def _error(self, reason: str, statuses: dict[str, str], err: OpenRouterError) -> TriggerEvent:
        return self._event("error", reason, statuses, str(err), err)

    def _connection_error(self, err: OpenRouterError) -> TriggerEvent:
        return self._error("permanent_error", {}, err)

    async def _poll(self, transport: Any) -> TriggerEvent:
        statuses: dict[str, str] = {}
        waiting = list(self.batch_ids)
        errors_in_a_row = 0
        while True:
            try:
                statuses.update(await self._statuses(transport, waiting))
            except OpenRouterInsufficientCreditsError as err:
                return self._error("payment_required", statuses, err)
            except (
                OpenRouterAuthenticationError,
                OpenRouterPermissionError,
                OpenRouterNotFoundError,
            ) as err:
                return self._error("permanent_error", statuses, err)
            except OpenRouterError as err:
                errors_in_a_row += 1
                if self._too_many_errors(errors_in_a_row, "polling batches", err):
                    return self._error("polling_error", statuses, err)
            else:
                errors_in_a_row = 0
                waiting = [
                    batch_id for batch_id in waiting if statuses.get(batch_id) not in TERMINAL_STATUSES
                ]
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

    async def _statuses(self, transport: Any, waiting: list[str]) -> dict[str, str]:
        """The status of every batch in ``waiting``: from the list, else (rarely) by id."""
        wanted = set(waiting)
        found: dict[str, str] = {}
        params: dict[str, Any] = {"limit": LIST_PAGE_SIZE}
        for _ in range(MAX_LIST_PAGES):
            page = await transport.get("/batches", params)
            items = page.get("data") or []
            found.update(
                (str(item["id"]), str(item.get("status")))
                for item in items
                if isinstance(item, dict) and item.get("id") in wanted
            )
            last_id = page.get("last_id")
            if len(found) == len(wanted) or not items or not last_id or last_id == params.get("after"):
                break
            params = {"limit": LIST_PAGE_SIZE, "after": last_id}
        for batch_id in sorted(wanted - set(found)):
            # Not listed: a 404 ends the wait; an answer of a terminal batch is parsed here, once.
            found[batch_id] = str((await transport.get(f"/batches/{batch_id}")).get("status"))
        return found

    async def on_kill(self) -> None:
        """A user killed the deferred task. OpenRouter has no batch cancel operation, so nothing is sent:
        the batches keep running, and a retry of the task re-attaches to them and lands their results."""
        self.log.info(
            "task killed while waiting for batch(es) %s; they keep running and a retry collects them",
            ", ".join(self.batch_ids),
        )
