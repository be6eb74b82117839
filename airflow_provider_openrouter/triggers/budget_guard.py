"""``OpenRouterBudgetGuardTrigger``: waits in the triggerer until the budget guard's threshold is met (the
deferred half of :class:`~airflow_provider_openrouter.operators.budget_guard.OpenRouterBudgetGuardOperator`).

Each round reads ``GET /key`` or ``GET /credits`` (idempotent GETs) and, when the guard names a budget, that
budget's balance in SQL (in a thread, so the event loop never blocks), then sleeps ``poll_interval`` seconds,
until the threshold is met or the wall-clock ``end_time`` passes.

Event contract (exactly one event, then the trigger returns): a JSON dict with ``status`` (one of
:data:`EVENT_STATUSES`), ``result`` (the last
:class:`~airflow_provider_openrouter.budget.guard.BudgetGuardResult` as JSON, or ``None`` if no round
completed), ``message`` for ``timeout`` and ``error``, and ``error``
(:meth:`OpenRouterError.to_event`) for ``error``: a 401/403, or ``max_consecutive_errors`` failed rounds.
"""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

from airflow.triggers.base import TriggerEvent

from airflow_provider_openrouter.exceptions import (
    OpenRouterAuthenticationError,
    OpenRouterError,
    OpenRouterPermissionError,
)
from airflow_provider_openrouter.triggers import OpenRouterPollingTrigger

EVENT_STATUSES = frozenset({"met", "timeout", "error"})
_FATAL = (OpenRouterAuthenticationError, OpenRouterPermissionError)
_PATHS = {"key": "/key", "credits": "/credits"}


class OpenRouterBudgetGuardTrigger(OpenRouterPollingTrigger):
    """Poll the guard's balances until every one meets the threshold, or until ``end_time``.

    :param openrouter_conn_id: the connection, read in the triggerer (no secret is serialized).
    :param source: ``"key"``, ``"credits"`` or ``"none"`` (only the budget).
    :param budget: the budget's settings (:meth:`OpenRouterBudget.to_dict`), or ``None``.
    :param run_id: the DAG run (a ``run`` budget's period).
    :param min_remaining_usd: the threshold in USD (a decimal string), or ``None``.
    :param min_remaining_fraction: the threshold as a fraction of the limit (a decimal string), or ``None``.
    :param poll_interval: seconds between two rounds.
    :param end_time: wall-clock deadline (``time.time()`` seconds), kept across a triggerer restart.
    """

    def __init__(
        self,
        openrouter_conn_id: str,
        source: str,
        budget: dict[str, Any] | None,
        run_id: str | None,
        min_remaining_usd: str | None,
        min_remaining_fraction: str | None,
        poll_interval: float,
        end_time: float,
    ) -> None:
        super().__init__()
        self.openrouter_conn_id = openrouter_conn_id
        self.source = source
        self.budget = dict(budget) if budget else None
        self.run_id = run_id
        self.min_remaining_usd = min_remaining_usd
        self.min_remaining_fraction = min_remaining_fraction
        self.poll_interval = float(poll_interval)
        self.end_time = float(end_time)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            self.classpath,
            {
                "openrouter_conn_id": self.openrouter_conn_id,
                "source": self.source,
                "budget": self.budget,
                "run_id": self.run_id,
                "min_remaining_usd": self.min_remaining_usd,
                "min_remaining_fraction": self.min_remaining_fraction,
                "poll_interval": self.poll_interval,
                "end_time": self.end_time,
            },
        )

    def _connection_error(self, err: OpenRouterError) -> TriggerEvent:
        return TriggerEvent({"status": "error", "result": None, "message": str(err), "error": err.to_event()})

    async def check(self, transport: Any) -> Any:
        """One round: the guard's result from the GET and the budget's balance."""
        from airflow_provider_openrouter.budget import guard

        min_usd = Decimal(self.min_remaining_usd) if self.min_remaining_usd is not None else None
        fraction = Decimal(self.min_remaining_fraction) if self.min_remaining_fraction is not None else None
        pools = []
        limit_reset = None
        if self.source in _PATHS:
            answer = await transport.get(_PATHS[self.source])
            data = answer.get("data") if isinstance(answer, dict) else None
            data = data if isinstance(data, dict) else {}
            limit_reset = data.get("limit_reset")
            pools.append(guard.account_pool(self.source, data, min_usd, fraction))
        if self.budget is not None:
            balance = await asyncio.to_thread(guard.budget_balance, self.budget, self.run_id)
            pools.append(guard.budget_pool(balance, min_usd, fraction))
        return guard.result(pools, limit_reset)

    async def _poll(self, transport: Any) -> TriggerEvent:
        errors_in_a_row = 0
        last = None
        while True:
            try:
                last = await self.check(transport)
                errors_in_a_row = 0
                if last.met:
                    return TriggerEvent({"status": "met", "result": last.model_dump(mode="json")})
            except _FATAL as err:
                return TriggerEvent(
                    {"status": "error", "result": None, "message": str(err), "error": err.to_event()}
                )
            except OpenRouterError as err:
                errors_in_a_row += 1
                if self._too_many_errors(errors_in_a_row, f"GET {_PATHS.get(self.source, '')}", err):
                    return TriggerEvent(
                        {"status": "error", "result": None, "message": str(err), "error": err.to_event()}
                    )
            if time.time() + self.poll_interval > self.end_time:
                dumped = last.model_dump(mode="json") if last is not None else None
                reasons = last.reasons() if last is not None else "no round completed"
                return TriggerEvent(
                    {
                        "status": "timeout",
                        "result": dumped,
                        "message": f"still not met at the deadline: {reasons}",
                    }
                )
            await asyncio.sleep(self.poll_interval)
