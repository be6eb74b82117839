"""Nightly cost audit: every generation of the run recorded in SQL with the task that made it, and a report.

1. ``ask`` sends three questions (a mapped chat task: one generation per map index).
2. ``audit`` records each generation once in the table ``openrouter_generation_costs`` of the SQL connection
   ``openrouter_costs``: model, provider, tokens, exact cost, latency, and the DAG, task, run and map index
   that made it. It reads the stats with ``GET /generation`` (asking again while they are 404). A rerun
   upserts the same rows; its XCom is a ``CostAuditSummary`` (totals, cost by model, provider and DAG, and
   any id that never resolved, with why).
3. ``announce`` reads the typed summary (an alert on spend or unresolved ids would go there).
4. ``report`` draws the whole table as one self-contained HTML page (and a PNG of it) under
   ``params.root``: cost per day by model, by DAG and task, tokens, latency percentiles, cache savings.

Audit a batch the same way: ``generation_ids=classify.output`` (the batch operator's manifest; its output file
is read, no request is sent with ``source="usage"``).

Connections: ``openrouter_default``, and ``openrouter_costs``: any Airflow SQL connection, e.g. a SQLite file
``AIRFLOW_CONN_OPENROUTER_COSTS='sqlite:////var/lib/airflow/openrouter-costs.db'`` or PostgreSQL
``postgres://user:pass@host:5432/analytics`` (docs/cost-audit.md).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from airflow_provider_openrouter.cost.summary import CostAuditSummary
from airflow_provider_openrouter.models import plain_decimal
from airflow_provider_openrouter.operators import (
    OpenRouterChatCompletionOperator,
    OpenRouterCostAuditOperator,
    OpenRouterCostReportOperator,
)

QUESTIONS = [
    "Name one way to cache LLM answers in a data pipeline.",
    "Name one metric to watch for LLM spend.",
    "Name one reason to reconcile costs with the provider's ledger.",
]


@dag(
    schedule="@daily",
    catchup=False,
    tags=["openrouter", "example", "cost"],
    params={"root": "file:///tmp/openrouter-cost-example", "model": "openai/gpt-4o-mini"},
)
def example_openrouter_cost_audit() -> None:
    ask = OpenRouterChatCompletionOperator.partial(
        task_id="ask", model="{{ params.model }}", max_tokens=60, temperature=0.2
    ).expand(content=QUESTIONS)

    audit = OpenRouterCostAuditOperator(
        task_id="audit",
        generation_ids=ask.output,
        source="generation",
        sql_conn_id="openrouter_costs",
        output_path="{{ params.root }}/{{ ds }}/costs.jsonl",
        wait_for_stats=120,
    )

    report = OpenRouterCostReportOperator(
        task_id="report",
        sql_conn_id="openrouter_costs",
        report_path="{{ params.root }}/{{ ds }}/cost-report.html",
        title="OpenRouter spend of {{ dag.dag_id }}",
    )

    @task
    def announce(summary: CostAuditSummary) -> str:
        """Reads the typed summary: where an alert on unresolved ids or spend would go."""
        for item in summary.unresolved:
            print(f"not recorded: {item.generation_id}: {item.reason}")
        by_model = ", ".join(f"{model} {plain_decimal(cost)}" for model, cost in summary.by_model.items())
        print(f"{summary.recorded} generation(s), {plain_decimal(summary.total_cost)} USD ({by_model})")
        return plain_decimal(summary.total_cost)

    audit >> report
    announce(audit.output)


example_openrouter_cost_audit()
