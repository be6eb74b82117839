"""The chat operator's ``output_type`` and ``budget`` under ``airflow dags test`` (SQLite, Airflow's default
deserialization settings); the emulator's billed count is the judge of what was paid for."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from dag_harness import TEST_DAGS, AirflowSandbox

pytestmark = pytest.mark.dag


def test_output_type_reaches_downstream_invalid_output_pays_first_and_an_exhausted_budget_sends_nothing(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    billed_before = emulator.stats()["billed_generations"]

    run = airflow_sandbox.dags_test("openrouter_structured_and_budget", dags_folder=TEST_DAGS)

    states = run.task_states()
    assert states == {
        "classify": "success",
        "receive": "success",
        "invalid": "failed",
        "over_budget": "failed",
    }, run.explain()
    # Two answers were billed: the valid one and the one that did not validate; the budget stopped the third.
    assert emulator.stats()["billed_generations"] - billed_before == 2

    verdict = run.xcom("classify")
    assert verdict["__classname__"] == "structured_verdict.Verdict", verdict
    assert run.xcom("receive") == verdict["__data__"]["label"]
    assert {"completion", "cost", "generation_id"} <= run.xcom_keys("classify")
    assert Decimal(run.xcom("classify", "cost")["__data__"]) > 0

    # The invalid answer's cost is in XCom, and the task failed on the validation errors in one line.
    assert run.xcom_keys("invalid") == {"generation_id", "text", "usage", "cost"}
    assert Decimal(run.xcom("invalid", "cost")["__data__"]) > 0
    assert "does not match output_type" in run.output and "Verdict:" in run.output

    assert run.xcom_keys("over_budget") == set()
    assert "budget 'pennies'" in run.output and "USD left" in run.output
