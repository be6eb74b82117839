"""The API key reaches no log file, no XCom, no rendered field, and no REST API response.

Two connections are stored in the metadata database through the REST API, as the UI's connection form does:
one with the emulator's key, one with a key the emulator rejects. ``e2e_secrets`` uses both. Then every file
under the deployment's log folder (task attempts, triggerer, scheduler, dag-processor, api-server) and every
XCom of every run so far is searched for either key.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_secrets"
DB_CONN_ID = "openrouter_e2e_db"
WRONG_KEY_CONN_ID = "openrouter_e2e_wrong_key"
# Distinctive, and unknown to the emulator (which answers 401).
WRONG_KEY = "sk-or-v1-e2ewrongkey7e57e57e57e57e57e57e57e57e57e57e57e57e57e57e5700099"


@pytest.fixture(scope="module")
def secrets_run(airflow_stack: Any, e2e_emulator: Any) -> str:
    client = airflow_stack.client
    for conn_id, key in ((DB_CONN_ID, e2e_emulator.api_key), (WRONG_KEY_CONN_ID, WRONG_KEY)):
        client.create_connection(
            conn_id, "openrouter", host=e2e_emulator.base_url, password=key, extra={"requests_per_minute": 0}
        )
    run_id, run = airflow_stack.run_dag(DAG_ID)
    states = {ti["task_id"]: ti["state"] for ti in client.task_instances(DAG_ID, run_id)}
    assert states == {"chat_db_connection": "success", "chat_wrong_key": "failed"}, (
        airflow_stack.failure_report(DAG_ID, run_id)
    )
    assert run["state"] == "failed"
    return run_id


def test_rest_api_does_not_show_the_connection_password(
    airflow_stack: Any, e2e_emulator: Any, secrets_run: str
) -> None:
    client = airflow_stack.client
    single = client.connection(DB_CONN_ID)
    assert single["host"] == e2e_emulator.base_url  # the stored connection is the one read back
    assert single["password"] != e2e_emulator.api_key
    listing = client.request("GET", "/connections", params={"limit": 100})
    assert DB_CONN_ID in {c["connection_id"] for c in listing["connections"]}
    for body in (single, listing):
        text = json.dumps(body)
        assert e2e_emulator.api_key not in text
        assert WRONG_KEY not in text


def test_no_task_log_file_contains_a_key(airflow_stack: Any, e2e_emulator: Any, secrets_run: str) -> None:
    client = airflow_stack.client
    # The logs searched below are the real ones: the successful attempt logged its generation id, the rejected
    # one the 401 naming its connection.
    generation_id = client.xcom_value(DAG_ID, secrets_run, "chat_db_connection", key="generation_id")
    assert generation_id in client.task_log(DAG_ID, secrets_run, "chat_db_connection")
    assert WRONG_KEY_CONN_ID in client.task_log(DAG_ID, secrets_run, "chat_wrong_key")

    log_files = list(airflow_stack.log_files())
    task_logs = [p for p in log_files if f"dag_id={DAG_ID}" in p.parts and p.name.startswith("attempt=")]
    assert len(task_logs) == 2, task_logs
    leaks = []
    for path in log_files:
        text = path.read_text(errors="replace")
        leaks += [
            f"{path}: {name}"
            for name, key in (("api key", e2e_emulator.api_key), ("wrong key", WRONG_KEY))
            if key in text
        ]
    assert not leaks, leaks


def test_no_xcom_or_rendered_field_contains_a_key(
    airflow_stack: Any, e2e_emulator: Any, secrets_run: str
) -> None:
    client = airflow_stack.client
    entries = client.request("GET", "/dags/~/dagRuns/~/taskInstances/~/xcomEntries", params={"limit": 1000})[
        "xcom_entries"
    ]
    assert any(e["run_id"] == secrets_run for e in entries)
    for entry in entries:
        value = client.xcom_value(
            entry["dag_id"], entry["run_id"], entry["task_id"], entry["key"], entry["map_index"]
        )
        text = json.dumps(value)
        assert e2e_emulator.api_key not in text, entry
        assert WRONG_KEY not in text, entry

    task_instances = client.request("GET", "/dags/~/dagRuns/~/taskInstances", params={"limit": 1000})
    assert any(ti["dag_run_id"] == secrets_run for ti in task_instances["task_instances"])
    text = json.dumps(task_instances)  # includes every task's rendered template fields
    assert e2e_emulator.api_key not in text
    assert WRONG_KEY not in text
