"""E2E DAG: chat completions through connections stored in the metadata database (as the UI creates them).

``chat_db_connection`` succeeds with the stored key; ``chat_wrong_key`` uses a connection whose key the
emulator rejects (401), so its log holds the provider's error and traceback. The test then searches every log
file, XCom and API response of the deployment for both keys.
"""

from __future__ import annotations

from airflow.sdk import dag

from airflow_provider_openrouter.operators import OpenRouterChatCompletionOperator


@dag(schedule=None, catchup=False, tags=["e2e"])
def e2e_secrets() -> None:
    OpenRouterChatCompletionOperator(
        task_id="chat_db_connection",
        openrouter_conn_id="openrouter_e2e_db",
        model="openai/gpt-4o-mini",
        content="Name one colour.",
        max_tokens=16,
    )
    OpenRouterChatCompletionOperator(
        task_id="chat_wrong_key",
        openrouter_conn_id="openrouter_e2e_wrong_key",
        model="openai/gpt-4o-mini",
        content="Name one colour.",
        max_tokens=16,
        retries=0,
    )


e2e_secrets()
