"""Chat completion: one question to one model; a later task reads the typed answer.

Connection: ``openrouter_default`` (see docs/quickstart.md). Change the model or the question per run
(``params``), e.g. ``airflow dags test example_openrouter_chat -c '{"model": "anthropic/claude-3.5-haiku"}'``.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator


@dag(
    schedule=None,
    catchup=False,
    tags=["openrouter", "example"],
    params={"model": "openai/gpt-4o-mini", "question": "In one sentence: what is Apache Airflow?"},
)
def example_openrouter_chat() -> None:
    chat = OpenRouterChatCompletionOperator(
        task_id="chat",
        model="{{ params.model }}",
        system_prompt="You answer briefly and precisely.",
        content="{{ params.question }}",
        max_tokens=200,
        temperature=0.2,
    )

    @task
    def read_answer(answer: ChatCompletion, cost_pushed: object) -> None:
        message = answer.choices[0].message
        assert message.role == "assistant", message.role
        assert message.content, "the model returned no text"
        assert answer.usage is not None and answer.usage.total_tokens > 0
        print(f"{answer.model} answered: {message.content}")
        print(
            f"{answer.usage.prompt_tokens} prompt + {answer.usage.completion_tokens} completion tokens, "
            f"cost {answer.cost} USD (XCom 'cost': {cost_pushed})"
        )

    read_answer(chat.output, chat.output["cost"])


example_openrouter_chat()
