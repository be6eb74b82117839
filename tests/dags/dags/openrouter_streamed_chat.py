"""One question asked twice, once streamed: a later task reads both typed answers (test DAG)."""

from __future__ import annotations

from airflow.sdk import dag, task

from airflow_provider_openrouter.models import ChatCompletion
from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator

QUESTION = {"model": "openai/gpt-4o-mini", "content": "Describe a message queue.", "seed": 11, "retries": 0}


@dag(schedule=None, catchup=False, params={"stream": True})
def openrouter_streamed_chat() -> None:
    plain = OpenRouterChatCompletionOperator(task_id="plain", **QUESTION)
    streamed = OpenRouterChatCompletionOperator(task_id="streamed", stream="{{ params.stream }}", **QUESTION)

    @task
    def compare(plain_answer: ChatCompletion, streamed_answer: ChatCompletion) -> None:
        assert isinstance(streamed_answer, ChatCompletion), type(streamed_answer)
        assert streamed_answer.text == plain_answer.text, (streamed_answer.text, plain_answer.text)
        assert streamed_answer.cost == plain_answer.cost, (streamed_answer.cost, plain_answer.cost)
        assert streamed_answer.id != plain_answer.id

    compare(plain.output, streamed.output)


openrouter_streamed_chat()
