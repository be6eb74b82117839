"""Get credits: how much was bought and how much is used.

OpenRouter answers ``/credits`` only for a management key, so this DAG uses a second connection,
``openrouter_management``, whose API Key is a management key.
"""

from __future__ import annotations

from airflow.sdk import dag, task

from airflow_provider_openrouter.models import Credits
from airflow_provider_openrouter.operators import OpenRouterGetCreditsOperator


@dag(schedule=None, catchup=False, tags=["openrouter", "example"])
def example_openrouter_credits() -> None:
    credits = OpenRouterGetCreditsOperator(task_id="get_credits", openrouter_conn_id="openrouter_management")

    @task
    def report_balance(account: Credits) -> None:
        assert account.total_usage <= account.total_credits, "usage above purchases"
        print(
            f"purchased {account.total_credits} USD, used {account.total_usage} USD, "
            f"{account.remaining} USD left"
        )

    report_balance(credits.output)


example_openrouter_credits()
