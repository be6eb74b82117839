"""The audit, end to end and free of Airflow operators: collect ids, resolve them, write SQL and/or a file,
reconcile with ``GET /activity``, summarise. The audit operator
(:class:`~airflow_provider_openrouter.operators.cost_audit.OpenRouterCostAuditOperator`) and the benchmark
call :func:`run_audit`."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from airflow_provider_openrouter.cost.collect import Collected
from airflow_provider_openrouter.cost.files import write_records
from airflow_provider_openrouter.cost.reconcile import fetch_activity, reconcile, reconciliation_sql_rows
from airflow_provider_openrouter.cost.records import SOURCES, CostRecord
from airflow_provider_openrouter.cost.resolve import (
    DEFAULT_MAX_WORKERS,
    Resolved,
    from_generation_endpoint,
    from_usages,
)
from airflow_provider_openrouter.cost.store import CostStore
from airflow_provider_openrouter.cost.summary import CostAuditSummary, UnresolvedGeneration, summarize
from airflow_provider_openrouter.models import Generation

log = logging.getLogger(__name__)


@dataclasses.dataclass
class AuditResult:
    summary: CostAuditSummary
    records: list[CostRecord]


def run_audit(
    collected: Collected,
    *,
    source: str,
    fetch: Callable[[str], Generation] | None = None,
    store: CostStore | None = None,
    output_path: Any = None,
    wait_for_stats: float = 120.0,
    max_workers: int = DEFAULT_MAX_WORKERS,
    activity_transport: Any = None,
    management_conn_id: str | None = None,
    audited_at: datetime | None = None,
) -> AuditResult:
    """Resolve ``collected`` from ``source`` (``"usage"``: free; ``"generation"``: ``fetch`` each id), upsert
    the records into ``store`` and write them to ``output_path`` (either may be ``None``), reconcile the
    audited days with ``GET /activity`` when ``activity_transport`` (a management key's transport) is given.
    """
    if source not in SOURCES:
        raise ValueError(
            f"source={source!r}: use 'generation' (GET /generation) or 'usage' (the answers' own)"
        )
    moment = audited_at or datetime.now(UTC)
    refs = list(collected.refs.values())
    resolved: Resolved
    if source == "usage":
        resolved = from_usages(refs, moment)
    else:
        if fetch is None:
            raise ValueError("source='generation' needs a fetch function (OpenRouterHook.get_generation)")
        resolved = from_generation_endpoint(
            refs, fetch, moment, wait_for_stats=wait_for_stats, max_workers=max_workers, log=log
        )
    records = resolved.records
    for item in resolved.unresolved:
        log.warning("generation %s not recorded: %s", item.generation_id, item.reason)
    rows_in_table = None
    settled = 0
    if store is not None:
        store.upsert_costs([record.as_row() for record in records])
        rows_in_table = store.sql.count(store.costs)
        settled = settle_kept_reservations(store, records)
    if output_path is not None:
        write_records(output_path, records)
    as_dicts = [record.as_dict() for record in records]
    days = sorted({record.day for record in records})
    reconciliation = None
    if activity_transport is not None and days:
        items, unavailable = fetch_activity(activity_transport, days, management_conn_id or "")
        recorded = store.cost_rows(days) if store is not None else as_dicts
        reconciliation = reconcile(items, recorded, days, unavailable)
        if store is not None:
            store.upsert_reconciliation(reconciliation_sql_rows(reconciliation, moment))
    summary = summarize(
        as_dicts,
        source=source,
        requested=len(refs),
        duplicates=collected.duplicates,
        rows_without_generation=collected.rows_without_generation,
        unresolved=[
            UnresolvedGeneration(generation_id=u.generation_id, reason=u.reason) for u in resolved.unresolved
        ],
        requests_sent=resolved.requests,
        table=store.costs.name if store is not None else None,
        rows_in_table=rows_in_table,
        output_path=str(output_path) if output_path is not None else None,
        reconciliation=reconciliation,
        budget_reservations_settled=settled,
    )
    return AuditResult(summary, records)


def settle_kept_reservations(store: CostStore, records: list[CostRecord]) -> int:
    """Settle the budget reservations kept for lost answers whose generations this audit found (a budget
    ledger on the audit's own SQL connection); how many were settled."""
    from airflow_provider_openrouter.budget.ledger import Database, settle_kept

    costs = {record.generation_id: record.cost for record in records if record.cost is not None}
    if not costs:
        return 0
    database = Database(store.sql.hook, store.sql.dialect)
    try:
        settled = settle_kept(database, costs)
    finally:
        database.close()
    if settled:
        log.info("settled %d budget reservation(s) kept for lost answers", settled)
    return settled
