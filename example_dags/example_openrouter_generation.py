"""Get generation: the cost and token stats of a chat answer, looked up by its generation id.

OpenRouter writes the stats shortly after the answer; the lookup asks again on 404 for up to
``wait_for_stats`` seconds (idempotent GETs only, the chat is never resent).
"""

from __future__ import annotations

from airflow.sdk import dag, task

from airflow_provider_openrouter.models import ChatCompletion, Generation
from airflow_provider_openrouter.operators import (
    OpenRouterChatCompletionOperator,
    OpenRouterGetGenerationOperator,
)


@dag(schedule=None, catchup=False, tags=["openrouter", "example"])
def example_openrouter_generation() -> None:
    chat = OpenRouterChatCompletionOperator(
        task_id="chat",
        model="openai/gpt-4o-mini",
        content="Name one prime number greater than 100.",
        max_tokens=20,
    )
    stats = OpenRouterGetGenerationOperator(
        task_id="get_generation",
        generation_id=chat.output["generation_id"],
        wait_for_stats=60,
    )

    @task
    def compare(answer: ChatCompletion, generation: Generation) -> None:
        assert generation.id == answer.id
        print(
            f"{generation.model} via {generation.provider_name}: {generation.tokens_prompt} prompt + "
            f"{generation.tokens_completion} completion tokens, total cost {generation.total_cost} USD "
            f"(the answer reported {answer.cost} USD)"
        )

    compare(chat.output, stats.output)


example_openrouter_generation()
