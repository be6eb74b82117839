"""Deferral changes nothing about how a task fails: a get-generation task meeting 401, 402, 429 or 503 on
the worker and the same task meeting it in the triggerer end alike under the retry policy (real Airflow on
SQLite)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from dag_harness import API_KEY, TEST_DAGS, AirflowSandbox

from airflow_provider_openrouter.retry_policy import OPENROUTER_RETRY_POLICY

pytestmark = [
    pytest.mark.dag,
    pytest.mark.skipif(
        OPENROUTER_RETRY_POLICY is None,
        reason="Airflow < 3.3 has no ExceptionRetryPolicy (operators take no retry_policy argument)",
    ),
]

# (try_number, state) each lookup must end in: a 401 or 402 fails on its first try although a retry is left;
# a 429 or 503 is retried, and the retry reads the stats.
EXPECTED = {401: (1, "failed"), 402: (1, "failed"), 429: (2, "success"), 503: (2, "success")}


def test_a_deferred_task_fails_retries_or_stops_as_a_direct_one(
    airflow_sandbox: AirflowSandbox, emulator: Any
) -> None:
    airflow_sandbox.connections["openrouter_noretry"] = json.dumps(
        {
            "conn_type": "openrouter",
            "host": emulator.base_url,
            "password": API_KEY,
            "extra": {"max_retries": 0, "requests_per_minute": 0},
        }
    )
    try:
        run = airflow_sandbox.dags_test("openrouter_deferred_errors", dags_folder=TEST_DAGS)
    finally:
        emulator.configure(fail_next={})

    rows = run.query(
        "SELECT task_id, try_number, state FROM task_instance WHERE task_id LIKE 'direct_%' "
        "OR task_id LIKE 'deferred_%'"
    )
    ended = {task_id: (try_number, state) for task_id, try_number, state in rows}
    expected = {
        f"{path}_{status}": outcome for status, outcome in EXPECTED.items() for path in ("direct", "deferred")
    }
    assert ended == expected, run.explain()
    for status in EXPECTED:
        assert f"HTTP {status}" in run.output, status
    assert "deferring, asking every" in run.output
