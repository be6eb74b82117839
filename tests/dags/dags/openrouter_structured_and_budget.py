"""The chat operator's ``output_type`` and ``budget`` in one run (test DAG).

``classify`` answers into ``Verdict`` and ``receive`` gets the instance back from XCom (it asserts the class
itself); ``invalid`` gets an answer the emulator makes not conform to the schema (billed, then the task
fails); ``over_budget`` meets a budget smaller than any request's worst case, so nothing is sent.
"""

from __future__ import annotations

from airflow.sdk import dag, task
from structured_verdict import Verdict

from airflow_provider_openrouter.budget import OpenRouterBudget
from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator

MODEL = "openai/gpt-4o-mini"


@dag(schedule=None, catchup=False)
def openrouter_structured_and_budget() -> None:
    classify = OpenRouterChatCompletionOperator(
        task_id="classify",
        model=MODEL,
        content="Is 'the build is green' good news? Give a label and a confidence.",
        output_type=Verdict,
        retries=0,
    )

    @task
    def receive(verdict: Verdict) -> str:
        if not isinstance(verdict, Verdict):
            raise TypeError(f"expected a Verdict, got {type(verdict).__name__}: {verdict!r}")
        return verdict.label

    receive(classify.output)

    OpenRouterChatCompletionOperator(
        task_id="invalid",
        model=MODEL,
        content="[[emulator: invalid-json]] Is 'the build is red' good news?",
        output_type=Verdict,
        retries=0,
    )
    OpenRouterChatCompletionOperator(
        task_id="over_budget",
        model=MODEL,
        content="Name a colour.",
        budget=OpenRouterBudget("pennies", "0.000000000001", period="run", on_exhausted="fail"),
        retries=0,
    )


openrouter_structured_and_budget()
