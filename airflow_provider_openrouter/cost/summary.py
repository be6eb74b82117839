"""The cost audit's typed XCom: :class:`CostAuditSummary` (pydantic, module scope, registered with XCom's
serde on import like :mod:`airflow_provider_openrouter.models`, so a downstream task gets it back typed with
Airflow's default ``allowed_deserialization_classes``)."""

# No ``from __future__ import annotations``: pydantic reads the real annotation objects (see models.py).
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict

from airflow_provider_openrouter.models import Money, register_with_serde

UNKNOWN = "(unknown)"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())


class UnresolvedGeneration(_Frozen):
    """An id the audit could not record, and why."""

    generation_id: str
    reason: str


class ReconciliationRow(_Frozen):
    """One UTC day and model: what OpenRouter billed (``GET /activity``) beside what the audit recorded.

    ``difference`` = ``billed_usage`` - ``recorded_cost``: positive when the account spent more than the audit
    saw (other apps on the same account, or generations the pipeline never audited).
    """

    day: str
    model: str
    billed_usage: Money
    billed_byok_usage: Money = Decimal(0)
    billed_requests: int = 0
    recorded_cost: Money
    recorded_requests: int = 0
    difference: Money


class Reconciliation(_Frozen):
    """The reconciliation of the audited days; ``unavailable_days``: day -> why ``/activity`` had no answer
    (OpenRouter serves only the last 30 completed UTC days)."""

    rows: list[ReconciliationRow] = []
    unavailable_days: dict[str, str] = {}
    billed_total: Money = Decimal(0)
    recorded_total: Money = Decimal(0)
    difference_total: Money = Decimal(0)


class CostAuditSummary(_Frozen):
    """What one audit recorded. The XCom return value of ``OpenRouterCostAuditOperator``.

    ``total_cost`` is the exact sum of the recorded generations' costs (USD, ``Decimal``); ``by_model``,
    ``by_provider`` and ``by_dag`` split it (``"(unknown)"`` where the source did not say). ``requested`` ids
    were given (after removing ``duplicates``); ``recorded`` of them are in the table/file; ``unresolved``
    lists the others with their reason. ``rows_in_table`` is the table's row count after the upsert.
    ``budget_reservations_settled`` counts budget reservations kept for a lost answer that this audit settled
    (a budget on the same SQL connection; see docs/budgets.md).
    """

    source: str
    requested: int
    recorded: int
    duplicates: int = 0
    rows_without_generation: int = 0
    unresolved: list[UnresolvedGeneration] = []
    total_cost: Money = Decimal(0)
    upstream_cost: Money = Decimal(0)
    cache_discount: Money = Decimal(0)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_tokens: int = 0
    by_model: dict[str, Money] = {}
    by_provider: dict[str, Money] = {}
    by_dag: dict[str, Money] = {}
    days: list[str] = []
    requests_sent: int = 0
    table: str | None = None
    rows_in_table: int | None = None
    output_path: str | None = None
    reconciliation: Reconciliation | None = None
    budget_reservations_settled: int = 0

    @property
    def unresolved_ids(self) -> list[str]:
        return [item.generation_id for item in self.unresolved]


def _sum_by(records: Iterable[Mapping[str, Any]], key: str) -> dict[str, Decimal]:
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for record in records:
        totals[record.get(key) or UNKNOWN] += record.get("cost") or Decimal(0)
    return dict(sorted(totals.items()))


TOTALLED = (
    "cost",
    "upstream_cost",
    "cache_discount",
    "prompt_tokens",
    "completion_tokens",
    "reasoning_tokens",
    "cached_tokens",
)


def column_totals(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of each :data:`TOTALLED` column over ``records`` (money exact, ``None`` counted as 0)."""
    return {
        name: sum((record.get(name) or 0 for record in records), Decimal(0) if name in _MONEY else 0)
        for name in TOTALLED
    }


def summarize(records: Sequence[Mapping[str, Any]], **fields: Any) -> CostAuditSummary:
    """The summary of audited records (:meth:`CostRecord.as_dict`-like mappings with Decimal money)."""
    totals = column_totals(records)
    return CostAuditSummary(
        recorded=len(records),
        total_cost=totals.pop("cost"),
        **totals,
        by_model=_sum_by(records, "model"),
        by_provider=_sum_by(records, "provider"),
        by_dag=_sum_by(records, "dag_id"),
        days=sorted({str(record["day"]) for record in records if record.get("day")}),
        **fields,
    )


_MONEY = frozenset({"cost", "upstream_cost", "cache_discount"})

register_with_serde(CostAuditSummary, UnresolvedGeneration, ReconciliationRow, Reconciliation)


class CostReportInfo(_Frozen):
    """The XCom return value of ``OpenRouterCostReportOperator``: where the page and its PNG are, and the
    totals the page shows (``total_cost`` exact)."""

    html_path: str
    png_path: str
    generations: int
    total_cost: Money
    billed: Money | None = None
    difference: Money | None = None


register_with_serde(CostReportInfo)
