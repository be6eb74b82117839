"""The main example runs through the scheduler and LocalExecutor workers, and later tasks read typed results.

``dag.test()`` and ``airflow dags test`` run every task in one process and skip the worker's walk that
allow-lists the classes named by ``deserialization_allowed_class_fields``. Here each task runs in its own
supervised worker process, exactly as in production, with Airflow's default
``[core] allowed_deserialization_classes``: the downstream tasks only succeed if the provider's pydantic
classes are admitted in that fresh worker process.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import requests

pytestmark = pytest.mark.e2e

DAG_ID = "example_openrouter_chain"
MODELS = "airflow_provider_openrouter.models"


def _endpoint_prices(emulator: Any, model_id: str, provider_name: str) -> tuple[Decimal, Decimal]:
    """Per-token prompt and completion prices of the endpoint that served, from the emulator's catalog."""
    response = requests.get(
        f"{emulator.base_url}/models/{model_id}/endpoints",
        headers={"Authorization": f"Bearer {emulator.api_key}"},
        timeout=10,
    )
    response.raise_for_status()
    endpoints = response.json()["data"]["endpoints"]
    served = [e for e in endpoints if e["provider_name"] == provider_name]
    assert served, f"{provider_name} is not among the endpoints of {model_id}: {endpoints}"
    pricing = served[0]["pricing"]
    return Decimal(pricing["prompt"]), Decimal(pricing["completion"])


def test_default_deserialization_allow_list_is_in_force(airflow_stack: Any) -> None:
    """The premise of the typed-XCom test: the deployment adds nothing to Airflow's default allow-list."""
    result = airflow_stack.airflow("config", "get-value", "core", "allowed_deserialization_classes")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "airflow.*"


def test_chain_example_succeeds_and_downstream_tasks_receive_typed_results(
    airflow_stack: Any, e2e_emulator: Any
) -> None:
    client = airflow_stack.client
    run_id, run = airflow_stack.run_dag(DAG_ID)
    assert run["state"] == "success", airflow_stack.failure_report(DAG_ID, run_id)

    task_instances = {ti["task_id"]: ti for ti in client.task_instances(DAG_ID, run_id)}
    assert set(task_instances) == {"list_models", "pick_model", "chat", "get_generation", "report"}
    for ti in task_instances.values():
        assert ti["state"] == "success"
        # Queued by the scheduler and run by a LocalExecutor worker process (dag.test() queues nothing).
        assert ti["queued_when"] is not None and ti["pid"] is not None, ti

    # Upstream results are stored as serde-encoded pydantic objects, not as plain dicts.
    stored = {
        task_id: client.xcom_value(DAG_ID, run_id, task_id)
        for task_id in ("list_models", "chat", "get_generation")
    }
    assert stored["list_models"]["__classname__"] == f"{MODELS}.ModelList"
    assert stored["chat"]["__classname__"] == f"{MODELS}.ChatCompletion"
    assert stored["get_generation"]["__classname__"] == f"{MODELS}.Generation"

    # `report` reads answer.id, answer.text, stats.tokens_completion, stats.total_cost by attribute: it only
    # produced this summary because it received ChatCompletion and Generation objects in its worker.
    answer = stored["chat"]["__data__"]
    generation = stored["get_generation"]["__data__"]
    summary = client.xcom_value(DAG_ID, run_id, "report")
    assert summary["generation_id"] == answer["id"] == generation["id"]
    assert summary["text"] == answer["choices"][0]["message"]["content"]
    assert summary["model"] == answer["model"] == client.xcom_value(DAG_ID, run_id, "pick_model")
    assert (summary["prompt_tokens"], summary["completion_tokens"]) == (
        answer["usage"]["prompt_tokens"],
        answer["usage"]["completion_tokens"],
    )

    # The cost is what the serving endpoint's list prices give for these tokens (computed from the catalog).
    prompt_price, completion_price = _endpoint_prices(
        e2e_emulator, summary["model"], generation["provider_name"]
    )
    expected_cost = summary["prompt_tokens"] * prompt_price + summary["completion_tokens"] * completion_price
    assert Decimal(summary["cost_usd"]) == expected_cost
    assert Decimal(summary["cost_reported_with_answer_usd"]) == expected_cost

    report_log = client.task_log(DAG_ID, run_id, "report")
    assert f"{summary['model']} answered in {summary['completion_tokens']} tokens" in report_log
