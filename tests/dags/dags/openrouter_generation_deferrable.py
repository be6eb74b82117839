"""Chat, then its generation stats looked up by a deferrable task, then a task reading the typed result."""

from __future__ import annotations

from typing import Any

from airflow.sdk import dag, task

from airflow_provider_openrouter.models import ChatCompletion, Generation
from airflow_provider_openrouter.operators import (
    OpenRouterChatCompletionOperator,
    OpenRouterGetGenerationOperator,
)


@dag(schedule=None, catchup=False)
def openrouter_generation_deferrable() -> None:
    chat = OpenRouterChatCompletionOperator(
        task_id="chat",
        model="openai/gpt-4o-mini",
        content="Name one prime number greater than 100.",
        max_tokens=20,
        retries=0,
    )
    stats = OpenRouterGetGenerationOperator(
        task_id="get_generation",
        generation_id=chat.output["generation_id"],
        wait_for_stats=60,
        deferrable=True,
        retries=0,
    )

    @task
    def read_stats(answer: ChatCompletion, generation: Generation) -> dict[str, Any]:
        # Attribute access proves the XCom came back as the provider's classes, not dicts.
        return {
            "answer_id": answer.id,
            "generation_id": generation.id,
            "total_cost": str(generation.total_cost),
            "tokens_prompt": generation.tokens_prompt,
            "tokens_completion": generation.tokens_completion,
        }

    read_stats(chat.output, stats.output)


openrouter_generation_deferrable()
