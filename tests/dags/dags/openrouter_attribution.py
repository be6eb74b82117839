"""Attribution in real task runs: a chat, a completion, a mapped chat and a small concurrent batch name their
DAG, task, run and try on every request; the parameter and the connection extra turn it off (test DAG)."""

from __future__ import annotations

from airflow.sdk import dag

from airflow_provider_openrouter.operators import (
    OpenRouterBatchCompletionOperator,
    OpenRouterChatCompletionOperator,
    OpenRouterCompletionOperator,
)

MODEL = "openai/gpt-4o-mini"
QUESTION = "Name one benefit of idempotent tasks."


@dag(schedule=None, catchup=False, params={"output_dir": "/tmp", "missing": None})
def openrouter_attribution() -> None:
    OpenRouterChatCompletionOperator(
        task_id="chat", model=MODEL, content=QUESTION, attribution={"team": "search"}, retries=0
    )
    OpenRouterCompletionOperator(task_id="completion", model=MODEL, prompt=QUESTION, retries=0)
    OpenRouterChatCompletionOperator.partial(task_id="mapped", model=MODEL, retries=0).expand(
        content=["first question", "second question"]
    )
    OpenRouterBatchCompletionOperator(
        task_id="batch",
        model=MODEL,
        mode="concurrent",
        concurrency=2,
        inputs=[{"custom_id": "row-a", "prompt": "alpha"}, {"custom_id": "row-b", "prompt": "beta"}],
        output_path="{{ params.output_dir }}/batch.jsonl",
        retries=0,
    )
    OpenRouterChatCompletionOperator(
        task_id="chat_off", model=MODEL, content=QUESTION, attribution=False, retries=0
    )
    OpenRouterChatCompletionOperator(
        task_id="chat_extra_off",
        model=MODEL,
        content=QUESTION,
        openrouter_conn_id="openrouter_no_attribution",
        retries=0,
    )
    # A system prompt rendered from a missing value ("None") must not be sent: same prompt tokens as "plain".
    OpenRouterChatCompletionOperator(task_id="plain", model=MODEL, content=QUESTION, retries=0)
    OpenRouterChatCompletionOperator(
        task_id="system_none",
        model=MODEL,
        content=QUESTION,
        system_prompt="{{ params.missing }}",
        retries=0,
    )


openrouter_attribution()
