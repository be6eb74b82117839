"""E2E DAG: a Batch API run that defers to the triggerer while the batch is in progress.

``dag_run.conf`` gives ``output_path`` (where the JSONL lands) and ``rows`` (how many prompts to send).
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from airflow_provider_openrouter.operators import OpenRouterBatchCompletionOperator

MODEL = "openai/gpt-4o-mini"


@dag(schedule=None, catchup=False, tags=["e2e"])
def e2e_batch_api() -> None:
    @task
    def prompts(dag_run: Any = None) -> list[dict[str, str]]:
        rows = int(dag_run.conf["rows"])
        return [{"custom_id": f"ticket-{i}", "prompt": f"Classify support ticket #{i}."} for i in range(rows)]

    OpenRouterBatchCompletionOperator(
        task_id="batch",
        model=MODEL,
        mode="batch_api",
        inputs=prompts(),
        output_path="{{ dag_run.conf['output_path'] }}",
        max_tokens=24,
        poll_interval=1.0,
    )


e2e_batch_api()
