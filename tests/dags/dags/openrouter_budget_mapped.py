"""Eight mapped tasks spending from one budget (test DAG): each sends up to three chat completions through
the budget; a task that meets the exhausted budget is skipped (``on_exhausted="skip"``)."""

from __future__ import annotations

from airflow.sdk import dag, get_current_context, task

from airflow_provider_openrouter.budget import OpenRouterBudget

BUDGET = OpenRouterBudget(
    "mapped-tasks", "0.0002", period="run", sql_conn_id="openrouter_budgets", on_exhausted="skip"
)


@dag(schedule=None, catchup=False)
def openrouter_budget_mapped() -> None:
    @task
    def spend(index: int) -> list[str]:
        from airflow_provider_openrouter.budget import BudgetExhaustedError, raise_for_exhausted
        from airflow_provider_openrouter.hooks import OpenRouterHook

        hook = OpenRouterHook()
        run_id = get_current_context()["run_id"]
        ids: list[str] = []
        with BUDGET.open(hook, run_id=run_id) as ledger:
            for attempt in range(3):
                body = hook.build_chat_request(
                    "openai/gpt-4o-mini",
                    "user",
                    f"task {index}, question {attempt}: name a city",
                    max_tokens=40,
                )
                try:
                    answer = ledger.spend(body, hook.send_chat_request)
                except BudgetExhaustedError as err:
                    if not ids:
                        raise_for_exhausted(err, BUDGET)  # on_exhausted="skip": skips this task
                    return ids  # this task spent what it could
                ids.append(answer.generation_id)
        return ids

    spend.expand(index=list(range(8)))


openrouter_budget_mapped()
