"""What a billable call adds around the wire: a budget's reservation, and an answer validated into a class.

The money rule of budgets (docs/budgets.md): the worst case of the exact body is reserved before it is sent
(an exhausted budget raises :class:`~airflow_provider_openrouter.budget.BudgetExhaustedError` and nothing is
sent); then the reservation is settled with the answer's ``usage.cost``, released when the request
provably was not charged (``billed=False``: never sent, or OpenRouter's error envelope), and kept whole when
the outcome is unknown (a lost answer, or an answer without a cost), for the cost audit to settle.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from pydantic import BaseModel

from airflow_provider_openrouter.hooks._attribution import current_task_context
from airflow_provider_openrouter.models import ChatCompletion, TextCompletion

if TYPE_CHECKING:
    from airflow_provider_openrouter.budget import OpenRouterBudget
    from airflow_provider_openrouter.budget.ledger import BudgetLedger, Reservation
    from airflow_provider_openrouter.embeddings import Embeddings

__all__ = ["BudgetBook", "StructuredCompletion", "spend"]

OutputT = TypeVar("OutputT", bound=BaseModel)
BillableT = TypeVar("BillableT", ChatCompletion, TextCompletion, "Embeddings")


@dataclasses.dataclass(frozen=True)
class StructuredCompletion(Generic[OutputT]):
    """A chat answer validated into the caller's ``output_type``: ``output`` is the instance, ``completion``
    the whole :class:`~airflow_provider_openrouter.models.ChatCompletion` (``.cost``, ``.usage``, ``.id``)."""

    output: OutputT
    completion: ChatCompletion


class BudgetBook:
    """The budgets one hook spends from: each ledger opened once per budget and DAG run (its SQL connection
    is reused by every call and thread of the hook) and closed with the hook."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ledgers: dict[tuple[OpenRouterBudget, str | None], BudgetLedger] = {}

    def reserve(self, hook: Any, budget: OpenRouterBudget, body: Mapping[str, Any]) -> Reservation:
        """Reserve the worst case of ``body`` in ``budget`` for the running task's DAG run."""
        context = current_task_context()
        run_id = context.get("run_id") if context is not None else None
        key = (budget, run_id)
        with self._lock:
            ledger = self._ledgers.get(key)
            if ledger is None:
                ledger = self._ledgers[key] = budget.open(hook, run_id=run_id)
        return ledger.reserve(body)

    def close(self) -> None:
        with self._lock:
            ledgers, self._ledgers = list(self._ledgers.values()), {}
        for ledger in ledgers:
            ledger.close()


def spend(reservation: Reservation | None, send: Callable[[], BillableT]) -> BillableT:
    """Run ``send`` and close ``reservation`` by how it ended (see the module docstring)."""
    if reservation is None:
        return send()
    try:
        result = send()
    except BaseException as err:
        reservation.close_after(error=err)
        raise
    if result.cost is not None:
        reservation.settle(result.cost, result.id)
    else:
        reservation.keep(result.id)
    return result
