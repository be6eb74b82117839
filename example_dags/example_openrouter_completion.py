"""Text completion (the legacy prompt-in, text-out endpoint); a later task reads the typed answer.

OpenRouter has dropped ``/completions`` from its current API spec. If it answers 404/410 the task fails with a
message pointing to the chat operator; use ``example_openrouter_chat`` instead.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from airflow_provider_openrouter.models import TextCompletion
from airflow_provider_openrouter.operators import OpenRouterCompletionOperator


@dag(schedule=None, catchup=False, tags=["openrouter", "example"])
def example_openrouter_completion() -> None:
    completion = OpenRouterCompletionOperator(
        task_id="complete",
        model="openai/gpt-3.5-turbo-instruct",
        prompt="The three primary colours are",
        max_tokens=40,
        stop=["\n\n"],
    )

    @task
    def read_text(answer: TextCompletion) -> None:
        choice = answer.choices[0]
        assert choice.text, "the model returned no text"
        print(f"{answer.model} completed: {choice.text!r} (finish_reason {choice.finish_reason})")
        print(f"cost {answer.cost} USD")

    read_text(completion.output)


example_openrouter_completion()
