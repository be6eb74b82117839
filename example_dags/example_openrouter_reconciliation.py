"""Daily reconciliation: what OpenRouter billed yesterday (``GET /activity``) beside what the audits recorded.

``reconcile`` reads the account's usage of the previous UTC day per model with a **management key**
(connection ``openrouter_management``; an inference key gets 403) and sets it beside the rows of that day in
the audit table. The difference per day and model (spend by other apps on the same account, or generations
no audit saw) goes to ``openrouter_generation_costs_reconciliation`` and into the XCom summary. OpenRouter
serves only completed UTC days of the last 30, hence yesterday. ``report`` then draws that day, gap included.

Connections: ``openrouter_management`` (a management key) and ``openrouter_costs`` (the audit's SQL
connection; see example_openrouter_cost_audit and docs/cost-audit.md).
"""

from __future__ import annotations

from airflow.sdk import dag

from airflow_provider_openrouter.operators import OpenRouterCostAuditOperator, OpenRouterCostReportOperator


@dag(
    schedule="@daily",
    catchup=False,
    tags=["openrouter", "example", "cost"],
    params={"root": "file:///tmp/openrouter-cost-example", "day": ""},
)
def example_openrouter_reconciliation() -> None:
    # The day to reconcile: params.day when given, else the UTC day before the run's logical date.
    day = "{{ params.day or macros.ds_add(ds, -1) }}"

    reconcile = OpenRouterCostAuditOperator(
        task_id="reconcile",
        generation_ids=[],  # nothing new to record: reconcile what earlier audits put in the table
        sql_conn_id="openrouter_costs",
        management_conn_id="openrouter_management",
        reconcile_days=day,
    )

    report = OpenRouterCostReportOperator(
        task_id="report",
        sql_conn_id="openrouter_costs",
        report_path="{{ params.root }}/reconciliation-" + day + ".html",
        days=day,
        title="OpenRouter spend reconciled, " + day,
    )

    reconcile >> report


example_openrouter_reconciliation()
