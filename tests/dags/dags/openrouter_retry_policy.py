"""A chat task with retries left whose key is rejected: the retry policy fails it at once (test DAG)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag

from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator
from airflow_provider_openrouter.retry_policy import openrouter_retry_policy


@dag(schedule=None, catchup=False)
def openrouter_retry_policy_decides() -> None:
    OpenRouterChatCompletionOperator(
        task_id="chat",
        model="openai/gpt-4o-mini",
        content="Hello",
        # Without the policy a 401 would wait an hour for retry 1 of 3 (and `airflow dags test` with it).
        retries=3,
        retry_delay=timedelta(hours=1),
        retry_policy=openrouter_retry_policy(),
    )


openrouter_retry_policy_decides()
