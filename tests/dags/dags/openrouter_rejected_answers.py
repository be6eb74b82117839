"""Two chat answers that are paid for and then rejected by the operator's own checks (test DAG)."""

from __future__ import annotations

from airflow.sdk import dag

from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator


@dag(schedule=None, catchup=False)
def openrouter_rejected_answers() -> None:
    OpenRouterChatCompletionOperator(
        task_id="truncated",
        model="openai/gpt-4o-mini",
        content="Tell a long story about a lighthouse keeper.",
        max_tokens=1,
        fail_on_truncation=True,
        retries=0,
    )
    OpenRouterChatCompletionOperator(
        task_id="not_json",
        model="openai/gpt-4o-mini",
        content="Describe the weather in Paris as a JSON object with many fields.",
        response_format={"type": "json_object"},
        max_tokens=3,
        retries=0,
    )


openrouter_rejected_answers()
