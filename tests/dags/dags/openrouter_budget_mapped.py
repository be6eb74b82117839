"""Eight mapped chat tasks spending from one budget (test DAG): each reserves its request's worst case before
sending; a task that meets the exhausted budget is skipped (``on_exhausted="skip"``)."""

from __future__ import annotations

from airflow.sdk import dag

from airflow_provider_openrouter.budget import OpenRouterBudget
from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator

BUDGET = OpenRouterBudget(
    "mapped-tasks", "0.0001", period="run", sql_conn_id="openrouter_budgets", on_exhausted="skip"
)


@dag(schedule=None, catchup=False)
def openrouter_budget_mapped() -> None:
    OpenRouterChatCompletionOperator.partial(
        task_id="spend", model="openai/gpt-4o-mini", max_tokens=40, budget=BUDGET
    ).expand(content=[f"Task {index}: name a city and one fact about it." for index in range(8)])


openrouter_budget_mapped()
