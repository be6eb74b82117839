"""Triggers: idempotent waits that run in the triggerer, never a billable request.

:class:`OpenRouterPollingTrigger` is what every trigger here shares: the async transport's life cycle (read
the connection in the triggerer, close the client whatever happens) and the count of transient failures in a
row.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_openrouter.exceptions import OpenRouterError

DEFAULT_MAX_CONSECUTIVE_ERRORS = 5


class OpenRouterPollingTrigger(BaseTrigger):
    """Base of the polling triggers: one async transport per run, exactly one event, then return.

    Subclasses set ``openrouter_conn_id`` and ``max_consecutive_errors`` and implement :meth:`_poll` (which
    returns the one event) and :meth:`_connection_error` (the event when the connection cannot be used).
    """

    openrouter_conn_id: str
    max_consecutive_errors: int = DEFAULT_MAX_CONSECUTIVE_ERRORS

    @property
    def classpath(self) -> str:
        return f"{type(self).__module__}.{type(self).__qualname__}"

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_openrouter.hooks.openrouter import OpenRouterHook

        try:
            transport = await OpenRouterHook(self.openrouter_conn_id).aget_async_transport()
        except OpenRouterError as err:
            yield self._connection_error(err)
            return
        try:
            yield await self._poll(transport)
        finally:
            await transport.aclose()

    @abc.abstractmethod
    def _connection_error(self, err: OpenRouterError) -> TriggerEvent:
        """The event when the connection cannot be read or has no usable key (waiting cannot help)."""

    @abc.abstractmethod
    async def _poll(self, transport: Any) -> TriggerEvent:
        """Poll until the wait is over and return its one event."""

    def _too_many_errors(self, errors_in_a_row: int, what: str, err: OpenRouterError) -> bool:
        """Log one transient polling failure; True once ``max_consecutive_errors`` came in a row."""
        self.log.warning(
            "%s failed (%d in a row of at most %d): %s",
            what,
            errors_in_a_row,
            self.max_consecutive_errors,
            err,
        )
        return errors_in_a_row >= self.max_consecutive_errors
