"""``@task.openrouter``: discovery through the provider's task-decorators, and what the function may return.

The DAG runs (mapped and unmapped, instances downstream) are in tests/dags/test_structured_examples.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_openrouter.decorators.openrouter import OpenRouterDecoratedOperator, openrouter_task
from airflow_provider_openrouter.exceptions import OpenRouterRequestError


def test_task_openrouter_is_discovered_from_the_provider_info() -> None:
    from airflow.sdk import task

    assert task.openrouter is openrouter_task


def decorated(returns: Any, **kwargs: Any) -> OpenRouterDecoratedOperator:
    def ask() -> Any:
        return returns

    return OpenRouterDecoratedOperator(
        task_id="ask", python_callable=ask, model="openai/gpt-4o-mini", **kwargs
    )


@pytest.mark.parametrize("returns", [42, None, [], ["not a message"], {"role": "user", "content": "hi"}])
def test_a_function_that_returns_no_prompt_fails_before_anything_is_sent(returns: Any) -> None:
    operator = decorated(returns, openrouter_conn_id="no_such_connection")
    # No connection exists: had anything been sent (or the connection read), another error would say so.
    with pytest.raises(
        OpenRouterRequestError, match=r"task 'ask': the @task.openrouter function must return"
    ):
        operator.execute({})


@pytest.mark.parametrize("name", ["content", "messages"])
def test_the_prompt_comes_from_the_function_only(name: str) -> None:
    with pytest.raises(TypeError, match=f"@task.openrouter takes no '{name}'"):
        decorated("hi", **{name: "hello"})


def test_the_decorated_operator_renders_the_chat_parameters() -> None:
    assert {"model", "system_prompt", "temperature", "op_args", "op_kwargs"} <= set(
        OpenRouterDecoratedOperator.template_fields
    )
