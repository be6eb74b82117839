"""DAGs for the batch DAG tests. Paths and sizes come from ``dag_run.conf``; nothing is read at parse time."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, dag, task

from airflow_provider_openrouter.operators import OpenRouterBatchCompletionOperator

RESULTS = Asset(name="batch_results", uri="file:///batch-tests/results.jsonl")


@dag(schedule=None)
def openrouter_batch_concurrent() -> None:
    @task
    def questions(**context: Any) -> list[dict[str, str]]:
        count = int(context["dag_run"].conf["rows"])
        return [{"custom_id": f"q{n}", "prompt": f"Question {n}?"} for n in range(count)]

    batch = OpenRouterBatchCompletionOperator(
        task_id="batch",
        model="openai/gpt-4o-mini",
        mode="concurrent",
        inputs=questions(),
        output_path="{{ dag_run.conf['output_path'] }}",
        system_prompt="Answer briefly.",
        max_tokens=64,
        concurrency=4,
        outlets=[RESULTS],
    )

    @task
    def summarise(manifest: Any) -> dict[str, Any]:
        from airflow_provider_openrouter.batch.manifest import BatchManifest

        assert isinstance(manifest, BatchManifest), type(manifest)
        return {
            "succeeded": manifest.counts.succeeded,
            "cost": str(manifest.cost),
            "path": manifest.output_path,
        }

    summarise(batch.output)


@dag(schedule=None, default_args={"retries": 1, "retry_delay": timedelta(seconds=0)})
def openrouter_batch_api() -> None:
    OpenRouterBatchCompletionOperator(
        task_id="batch",
        model="openai/gpt-4o-mini",
        mode="batch_api",
        input_path="{{ dag_run.conf['input_path'] }}",
        output_path="{{ dag_run.conf['output_path'] }}",
        poll_interval=0.2,
    )


openrouter_batch_concurrent()
openrouter_batch_api()
