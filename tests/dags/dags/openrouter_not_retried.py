"""A chat task with retries whose answer is lost after OpenRouter ran it (test DAG)."""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import dag

from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator


@dag(schedule=None, catchup=False)
def openrouter_not_retried() -> None:
    OpenRouterChatCompletionOperator(
        task_id="answer_lost",
        model="openai/gpt-4o-mini",
        content="[[emulator: fault=reset]] Summarise the ticket.",
        retries=2,
        retry_delay=timedelta(0),
    )


openrouter_not_retried()
