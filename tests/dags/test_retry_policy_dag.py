"""The shipped retry policy in a real Airflow task: a 401 fails at once although retries are left."""

from __future__ import annotations

from typing import Any

import pytest
from dag_harness import TEST_DAGS, AirflowSandbox, openrouter_connection

from airflow_provider_openrouter.retry_policy import OPENROUTER_RETRY_POLICY

pytestmark = [
    pytest.mark.dag,
    pytest.mark.skipif(
        OPENROUTER_RETRY_POLICY is None,
        reason="Airflow < 3.3 has no ExceptionRetryPolicy (operators take no retry_policy argument)",
    ),
]


def test_rejected_key_fails_on_the_first_try_with_three_retries_left(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    wrong_key = "sk-or-v1-retrypolicywrongkeywrongkeywrongkeywrongkeywrongkey0005"
    airflow_sandbox.connections["openrouter_default"] = openrouter_connection(emulator.base_url, wrong_key)
    run = airflow_sandbox.dags_test("openrouter_retry_policy_decides", dags_folder=TEST_DAGS)

    assert not run.succeeded
    # Without the policy the task would be up for retry (1 of 3) with an hour's delay; here it is failed.
    rows = run.query("SELECT try_number, max_tries, state FROM task_instance WHERE task_id = 'chat'")
    assert rows == [(1, 3, "failed")], run.explain()
    assert "HTTP 401" in run.output
